#pragma once
// Choosing children of a search space: the largest, the smallest, uniform random ones, mutations,
// and the global "levels" BigNAS's coarse grid uses. Torch-free.
#include <cstdint>

#include "core/rng.h"
#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::supernet {

// The sandwich rule's ends. Cell spaces: every edge its most expensive op (MACs, then parameters),
// or its cheapest op other than none.
spec::Arch max_arch(const spec::SearchSpace& s);
spec::Arch min_arch(const spec::SearchSpace& s);
// The child of least cost: min_arch, except in a cell space with the none op (every edge none).
spec::Arch cheapest_arch(const spec::SearchSpace& s);
spec::Arch random_arch(const spec::SearchSpace& s, Rng& rng);
// Each decision changes with probability `prob` to a neighbouring choice (one step up or down the
// sorted choice set); at least one decision changes when the space has more than one child.
spec::Arch mutate_arch(const spec::Arch& a, const spec::SearchSpace& s, Rng& rng, double prob);

// Global settings for the coarse grid: each entry in [0, 1] picks the choice at that fraction of
// every set of its dimension (0 = smallest, 1 = largest). Cell spaces use `width` for every edge's
// place in its cost ranking of ops.
struct Levels {
  double resolution = 1, depth = 1, width = 1, expand = 1, kernel = 1;
};
spec::Arch arch_at_levels(const spec::SearchSpace& s, const Levels& l);

}  // namespace nas::supernet
