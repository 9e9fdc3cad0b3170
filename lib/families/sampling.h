#pragma once
// Choosing children of any search space: the largest, the smallest, uniform random ones,
// cost-stratified ones, mutations, and the global "levels" BigNAS's coarse grid uses. Each asks the
// space's family (families/family.h) for its part. Torch-free.
#include <functional>

#include "core/rng.h"
#include "families/family.h"

namespace nas::families {

// The sandwich rule's ends. Cell spaces: every edge its most expensive op (MACs, then parameters),
// or its cheapest op other than none.
spec::Arch max_arch(const spec::SearchSpace& s);
spec::Arch min_arch(const spec::SearchSpace& s);
// The child of least cost: min_arch, except in a cell space with the none op (every edge none).
spec::Arch cheapest_arch(const spec::SearchSpace& s);
spec::Arch random_arch(const spec::SearchSpace& s, Rng& rng);
// A random child whose cost falls in a bin drawn uniformly from `bins` equal bins between `low` and
// `high` (the min and max child's cost). Uniform sampling crowds the middle of the cost range (the
// costliest eighth of the Fashion-MNIST space holds about 1 child in 10,000); this trains every
// part of it as often (issue 19). Proposals are random children whose ordered decisions lean
// towards their larger or smaller choices, the lean moved after each proposal towards the bin; the
// first in the bin is kept (at most kStratifiedTries proposals, else the closest one).
constexpr int kStratifiedTries = 2000;
spec::Arch stratified_arch(const spec::SearchSpace& s, Rng& rng, int bins, double low, double high,
                           const std::function<double(const spec::Arch&)>& cost);
// Each decision changes with probability `prob` to a neighbouring choice (one step up or down the
// sorted choice set; any other choice when unordered); at least one decision changes when the space
// has more than one child.
spec::Arch mutate_arch(const spec::Arch& a, const spec::SearchSpace& s, Rng& rng, double prob);
spec::Arch arch_at_levels(const spec::SearchSpace& s, const Levels& l);

}  // namespace nas::families
