#pragma once
// Zero-cost proxies: scores of an untrained (or inherited) child from one forward or
// forward-backward pass on a fixed, seeded batch, which rank children without training them
// (Abdelfattah et al., ICLR 2021; Mellor et al., ICML 2021; as NASLib computes them).
//   synflow    sum |w * dR/dw| over conv and linear weights, R the sum of the outputs of the
//              network with absolute weights, BN as the identity, in float64, on an input of ones
//   grad-norm  sum over conv and linear weights of the L2 norm of the loss gradient
//   snip       sum |w * dL/dw| over conv and linear weights
//   jacov      -sum(log(v + 1e-5) + 1 / (v + 1e-5)) over the eigenvalues v of the correlation of the
//              per-image input gradients of the summed outputs
//   nwot       log |det K|, K[i][j] the number of units (inputs of every activation) on the same
//              side of zero for images i and j
// The loss L is the training loss (cross-entropy; mean squared error for a regression set); BN
// uses batch statistics (training mode), except in synflow. Higher is better for every proxy.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/idx.h"
#include "data/loader.h"
#include "families/modules.h"
#include "search/search.h"
#include "supernet/supernet.h"

namespace nas::search {

const std::vector<std::string>& proxy_names();
// UsageError unless `proxy` is one of proxy_names().
void check_proxy(const std::string& proxy);

// The proxy of `net` (changed by it: synflow makes its weights absolute) on the batch x (at the
// child's resolution) with targets y.
double zero_cost_proxy(const std::string& proxy, families::ChildNet& net, const torch::Tensor& x, const torch::Tensor& y);

struct ZeroCostOptions {
  std::string proxy = "synflow";
  // "init": the child's initial weights, as lower-fidelity training would draw them (seeded by
  // `seed` and the arch hash); "inherited": its weights sliced from the supernet.
  std::string weights = "init";
  uint64_t seed = 0;
};

// Scores a child by a proxy (Score::acc holds the proxy's value, not an accuracy: nas.search marks
// such candidates by their estimator "zero_cost_<proxy>").
class ZeroCostEstimator : public Estimator {
 public:
  // `supernet` is needed for inherited weights (null otherwise); `batch` comes from the training
  // split, at its own resolution (resized to each child's).
  ZeroCostEstimator(const spec::SearchSpace& space, int in_channels, int num_classes, supernet::Supernet supernet,
                    data::Batch batch, ZeroCostOptions o);
  std::string name() const override { return "zero_cost_" + o_.proxy; }
  Score score(const spec::Arch& arch) override;
  // The proxy of `arch` alone (prescreening).
  double proxy(const spec::Arch& arch);

 private:
  families::ChildNet child(const spec::Arch& arch);
  spec::SearchSpace space_;
  int in_channels_, num_classes_;
  supernet::Supernet supernet_;
  data::Batch batch_;
  ZeroCostOptions o_;
};

// Whether a candidate's estimator is a zero-cost proxy (its val_acc is then the proxy's value).
inline bool is_proxy_estimator(const std::string& estimator) { return estimator.rfind("zero_cost_", 0) == 0; }

}  // namespace nas::search
