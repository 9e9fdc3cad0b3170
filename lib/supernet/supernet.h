#pragma once
// The weight-sharing supernet over an mbconv, mlp or cell search space (DESIGN.md §4).
#include <torch/torch.h>

#include <vector>

#include "families/cell/modules.h"
#include "families/child.h"
#include "families/family.h"
#include "families/mbconv/mbconv.h"
#include "nn/elastic.h"
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
  // Sorts every block's expanded (middle) channels, and its SE bottleneck channels, by importance
  // (L1 norm of the weights that read them), as once-for-all does, so that children with smaller
  // expand ratios keep the most important channels. A permutation: the max child's function is
  // unchanged. Nothing to do in an mlp space: every hidden layer's units are read by the shared
  // classifier too, in the same column order whichever layer is last.
  void sort_channels();

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
  void build_mbconv(const families::mbconv::Space& s, int in_channels, int num_classes);
  void slice_mbconv(const families::mbconv::Choices& arch, families::ChildNetImpl& child);
  spec::SearchSpace space_;
  int in_channels_, num_classes_;
  spec::Arch active_;
  nn::DynamicConv2d stem_{nullptr};
  nn::DynamicBatchNorm2d stem_bn_{nullptr};
  std::vector<std::vector<nn::DynamicMBConv>> stages_;
  nn::DynamicConv2d head_{nullptr};
  nn::DynamicBatchNorm2d head_bn_{nullptr};
  nn::DynamicLinear classifier_{nullptr};
  // family mlp: hidden layers (bias-free Linear, BN on [N, C]); the classifier above is shared.
  std::vector<nn::DynamicLinear> mlp_fc_;
  std::vector<nn::DynamicBatchNorm2d> mlp_bn_;
  // family cell: every op of the space on every edge, each with its own weights
  families::cell::CellNet cell_net_{nullptr};
  nn::Act stem_act_{}, head_act_{};
  std::vector<nn::Act> stage_act_;
};
TORCH_MODULE(Supernet);

// Bilinear resize of a batch to resolution r x r (no-op when it already is).
torch::Tensor resize_input(const torch::Tensor& x, int r);

}  // namespace nas::supernet
