#pragma once
// The weight-sharing supernet over a search space of any family: the family's modules
// (families/modules.h) behind one module, its checkpoints' root (DESIGN.md §4).
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "families/family.h"
#include "families/modules.h"
#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::supernet {

class SupernetImpl : public torch::nn::Module {
 public:
  SupernetImpl(const spec::SearchSpace& space, int in_channels, int num_classes);

  // The child that forward() runs. Checked against the space (SpecError when outside).
  void set_active(const spec::Arch& arch);
  const spec::Arch& active() const { return active_; }
  // The last BN gamma of every residual block: 0 (each block starts as the identity) or 1.
  void init_last_bn_gamma(bool zero);
  // Sorts shared channels by importance where the family has them to sort (mbconv: every block's
  // expanded (middle) channels, and its SE bottleneck channels, by the L1 norm of the weights that
  // read them, as once-for-all does, so that children with smaller expand ratios keep the most
  // important channels; a permutation: the max child's function is unchanged). False when the
  // family has none (an mlp's hidden units are read by the shared classifier too, in the same
  // column order whichever layer is last).
  bool sort_channels();

  // The active child. x: [N, C, R, R], already at the active resolution (see resize_input).
  torch::Tensor forward(const torch::Tensor& x);
  // Child `a` (valid in the space), whatever the active one: passes of different children may run
  // concurrently on threads of their own (the trainer's workers). In training mode, `dropout` before
  // the classifier and stochastic depth `drop_connect` (residual block k of n active ones dropped
  // with probability drop_connect * k / n); the sandwich rule uses both for the max child only.
  torch::Tensor forward_child(const torch::Tensor& x, const spec::Arch& a, double dropout = 0.0,
                              double drop_connect = 0.0);
  // Family cell: the continuous relaxation (DARTS): every edge mixes all its ops with the weights'
  // row [normal or reduction edges, ops of the space]; the active arch is not used.
  torch::Tensor forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                              const torch::Tensor& reduce_weights);

  // A static network with the active weights (and BN statistics) of `arch` copied in.
  families::ChildNet slice(const spec::Arch& arch);

  families::Cost cost(const spec::Arch& arch) const { return families::arch_cost(space_, arch, in_channels_, num_classes_); }
  const spec::SearchSpace& space() const { return space_; }
  int in_channels() const { return in_channels_; }
  int num_classes() const { return num_classes_; }

 private:
  spec::SearchSpace space_;
  int in_channels_, num_classes_;
  spec::Arch active_;
  std::unique_ptr<families::SupernetModules> modules_;  // the family's, registered on this module
};
TORCH_MODULE(Supernet);

// Bilinear resize of a batch to resolution r x r (no-op when it already is).
torch::Tensor resize_input(const torch::Tensor& x, int r);

}  // namespace nas::supernet
