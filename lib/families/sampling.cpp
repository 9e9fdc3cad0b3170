#include "families/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace nas::families {
namespace {

// A child whose ordered decisions each take the choice pick(n) of their n sorted choices.
spec::Arch draw_arch(const spec::SearchSpace& s, Rng& rng, const Pick& pick, bool by_cost) {
  spec::Arch a;
  a.space = s.name;
  a.resolution = s.resolution[pick(s.resolution.size())];
  of(s).draw(s, rng, pick, by_cost, a);
  return a;
}

// A child drawn with each ordered decision tilted towards its larger (tilt > 0) or smaller choices:
// choice j of n with probability proportional to exp(tilt * j / (n - 1)); cell ops by cost rank.
spec::Arch tilted_arch(const spec::SearchSpace& s, Rng& rng, double tilt) {
  auto pick = [&](size_t n) {
    if (n < 2) return size_t{0};
    std::vector<double> weight(n);
    for (size_t j = 0; j < n; ++j) weight[j] = std::exp(tilt * static_cast<double>(j) / static_cast<double>(n - 1));
    double u = rng.uniform() * std::accumulate(weight.begin(), weight.end(), 0.0);
    for (size_t j = 0; j < n; ++j)
      if ((u -= weight[j]) < 0) return j;
    return n - 1;
  };
  return draw_arch(s, rng, pick, /*by_cost=*/true);
}

}  // namespace

spec::Arch arch_at_levels(const spec::SearchSpace& s, const Levels& l) {
  spec::Arch a;
  a.space = s.name;
  a.resolution = at_level(s.resolution, l.resolution);
  of(s).at_levels(s, l, a);
  return a;
}

spec::Arch max_arch(const spec::SearchSpace& s) { return arch_at_levels(s, Levels{1, 1, 1, 1, 1}); }
spec::Arch min_arch(const spec::SearchSpace& s) { return arch_at_levels(s, Levels{0, 0, 0, 0, 0}); }

spec::Arch cheapest_arch(const spec::SearchSpace& s) {
  spec::Arch a;
  a.space = s.name;
  a.resolution = at_level(s.resolution, 0);
  of(s).cheapest(s, a);
  return a;
}

spec::Arch random_arch(const spec::SearchSpace& s, Rng& rng) {
  return draw_arch(s, rng, [&](size_t n) { return static_cast<size_t>(rng.below(n)); }, /*by_cost=*/false);
}

spec::Arch stratified_arch(const spec::SearchSpace& s, Rng& rng, int bins, double low, double high,
                           const std::function<double(const spec::Arch&)>& cost) {
  constexpr double kTiltStep = 0.25, kMaxTilt = 30;
  const double width = (high - low) / std::max(1, bins);
  const double bin = static_cast<double>(rng.below(static_cast<uint64_t>(std::max(1, bins))));
  const double from = low + width * bin, to = bin + 1 >= bins ? high : from + width;
  spec::Arch closest;
  double closest_distance = INFINITY, tilt = 0;
  for (int i = 0; i < kStratifiedTries; ++i) {
    spec::Arch a = tilted_arch(s, rng, tilt);
    const double c = cost(a);
    const double distance = c < from ? from - c : c > to ? c - to : 0.0;
    if (distance == 0.0) return a;
    if (distance < closest_distance) {
      closest_distance = distance;
      closest = std::move(a);
    }
    tilt = std::clamp(tilt + (c < from ? kTiltStep : -kTiltStep), -kMaxTilt, kMaxTilt);
  }
  return closest;
}

spec::Arch mutate_arch(const spec::Arch& in, const spec::SearchSpace& s, Rng& rng, double prob) {
  const Family& family = of(s);
  for (int attempt = 0; attempt < 100; ++attempt) {
    spec::Arch a = in;
    if (rng.uniform() < prob) a.resolution = neighbour(s.resolution, a.resolution, rng);
    if (!family.mutate(s, rng, prob, a)) return in;
    if (a != in) return a;
  }
  return in;  // a space with a single child
}

}  // namespace nas::families
