#include "train/sampling_policy.h"

#include <algorithm>

#include "core/error.h"
#include "core/hash.h"
#include "families/sampling.h"

namespace nas::train {

spec::Arch policy_child(const supernet::Supernet& net, const spec::TrainSpec& t, Rng& rng,
                        const CandidateLosses& losses) {
  const auto& space = net->space();
  if (t.child_policy == "flops-stratified") {
    auto macs = [&](const spec::Arch& a) { return static_cast<double>(net->cost(a).macs); };
    return families::stratified_arch(space, rng, t.flops_bins, macs(families::min_arch(space)),
                                     macs(families::max_arch(space)), macs);
  }
  if (t.child_policy == "uniform") return families::random_arch(space, rng);
  NAS_CHECK(t.child_policy == "best-pareto" || t.child_policy == "worst-pareto", SpecError,
            t.source << ": sandwich.policy: unknown policy " << t.child_policy);
  std::vector<spec::Arch> candidates;
  for (int k = 0; k < t.candidates; ++k) candidates.push_back(families::random_arch(space, rng));
  const std::vector<double> loss = losses(candidates);
  const auto kept = t.child_policy == "best-pareto" ? std::min_element(loss.begin(), loss.end())
                                                   : std::max_element(loss.begin(), loss.end());
  return candidates[static_cast<size_t>(kept - loss.begin())];
}

std::vector<spec::Arch> step_children(const supernet::Supernet& net, const spec::TrainSpec& t, int64_t step,
                                      const spec::Arch* fixed, const CandidateLosses& losses) {
  if (fixed) return {*fixed};
  const auto& space = net->space();
  auto random_child = [&](int i) {
    Rng rng(mix_seed(t.seed, static_cast<uint64_t>(step), static_cast<uint64_t>(i) + 1));
    return policy_child(net, t, rng, losses);
  };
  if (t.sampling == "uniform") return {random_child(0)};
  std::vector<spec::Arch> children{families::max_arch(space), families::min_arch(space)};
  for (int i = 0; i < t.random_children; ++i) children.push_back(random_child(i));
  return children;
}

}  // namespace nas::train
