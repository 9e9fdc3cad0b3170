#pragma once
// DARTS (Liu et al., 2019) on a cell space's supernet: the continuous relaxation (every edge
// mixes all its ops with the softmax of its architecture weights), bi-level optimization
// (architecture weights on one half of the training split, network weights on the other; the
// architecture gradient first-order, or second-order through one unrolled weight step with a
// finite-difference Hessian-vector product), then the derivation of discrete cells. The derived
// cells are scored by nas-search's estimator like any other candidate.
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "data/loader.h"
#include "search/encoding.h"
#include "supernet/supernet.h"

namespace nas::search {

struct DartsOptions {
  int64_t steps = 300;      // bi-level iterations (one architecture step, one weight step each)
  int batch_size = 64;
  bool second_order = false;
  double alpha_lr = 3e-3;   // Adam, betas (0.5, 0.999), as DARTS
  double alpha_weight_decay = 1e-3;
  double w_lr = 0.01;       // SGD with momentum; also the unrolled step's xi (second order)
  double w_momentum = 0.9;
  double w_weight_decay = 3e-4;
  // Second order: the Hessian-vector product's central differences step the weights by
  // fd_radius / |v| along v (DARTS: 0.01).
  double fd_radius = 0.01;
  double grad_clip = 5.0;   // on the network weights' global norm
  bool train_weights = true;  // false: the network weights stay as given (architecture steps only)
  uint64_t seed = 0;
  int crop_padding = 0;
  bool hflip = false;
  data::Normalization norm;
  torch::Device device = torch::kCPU;
};

// The architecture weights of a cell space and the bi-level steps on a supernet.
class DartsRelaxation {
 public:
  DartsRelaxation(supernet::Supernet net, const DartsOptions& o);
  // Softmax over each edge's ops: [edges, ops of the space], rows sum to 1.
  torch::Tensor normal_weights() const { return torch::softmax(alpha_normal, 1); }
  torch::Tensor reduce_weights() const { return torch::softmax(alpha_reduce, 1); }
  // Loss of the relaxed network on a batch (cross-entropy; MSE for float targets).
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y);
  // The architecture gradient on a validation batch, left in alpha_*.grad(): first order, or second
  // order (one unrolled weight step on the training batch).
  void arch_gradient(const data::Batch& train, const data::Batch& val);
  // One architecture step (arch_gradient, then Adam), then, when training weights, one weight step
  // on the training batch. Returns {training loss (after the architecture step, before the weight
  // step), validation loss (before either)}.
  std::pair<double, double> step(const data::Batch& train, const data::Batch& val);

  torch::Tensor alpha_normal, alpha_reduce;  // [edges, ops], leaf tensors with gradients

 private:
  supernet::Supernet net_;
  DartsOptions o_;
  std::vector<torch::Tensor> weights_;
  std::unique_ptr<torch::optim::Adam> alpha_opt_;
  std::unique_ptr<torch::optim::SGD> w_opt_;
};

struct DartsReport {
  torch::Tensor normal_weights, reduce_weights;  // final softmax, on the CPU
  std::vector<double> train_loss, val_loss;      // per step
  double seconds = 0;
};

// Runs o.steps bi-level steps on `net` (changed in place: pass a copy to keep the supernet), batches
// drawn with seeded replacement from w_idx (weights) and a_idx (architecture). on_step(step, report so
// far) is called after each step (progress).
DartsReport run_darts(supernet::Supernet net, const data::ImageSet& set, const std::vector<int64_t>& w_idx,
                      const std::vector<int64_t>& a_idx, const DartsOptions& o,
                      const std::function<void(int64_t)>& on_step = {});

// The discrete children of the relaxation, most likely first: each edge takes one op other than
// none (as DARTS derives), a child's score being the sum over edges of the log-softmax of its ops;
// the first is DARTS's derived child (every edge its strongest op). At most k genotypes of `enc`.
std::vector<Genotype> darts_derive(const ArchEncoding& enc, const torch::Tensor& normal_weights,
                                   const torch::Tensor& reduce_weights, size_t k);

}  // namespace nas::search
