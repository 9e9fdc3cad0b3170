#pragma once
// The static twin of the supernet: a plain network of fixed size for one arch, built from standard
// LibTorch modules, that loads and runs with no supernet.
#include <torch/torch.h>

#include <vector>

#include "families/cell/modules.h"
#include "nn/elastic.h"
#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::families {

// A bias-free convolution with padding kernel/2, as every conv of a child has.
torch::nn::Conv2d conv_no_bias(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups = 1);
// The stem and the head exactly as ChildNet runs them; eval/lut.cpp times them alone with these.
// The stem's output becomes channels-last (a 1-channel input is both layouts at once, so it cannot
// carry the format into the stem: docs/ARCHITECTURE.md).
torch::Tensor stem_forward(torch::nn::Conv2d& conv, torch::nn::BatchNorm2d& bn, nn::Act act, const torch::Tensor& x);
torch::Tensor head_forward(torch::nn::Conv2d& conv, torch::nn::BatchNorm2d& bn, nn::Act act, torch::nn::Linear& fc,
                           torch::Tensor h);

class ChildBlockImpl : public torch::nn::Module {
 public:
  explicit ChildBlockImpl(const nn::MBConvOptions& o);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d expand_conv{nullptr};
  torch::nn::BatchNorm2d expand_bn{nullptr};
  torch::nn::Conv2d dw_conv{nullptr};
  torch::nn::BatchNorm2d dw_bn{nullptr};
  torch::nn::Linear se_reduce{nullptr}, se_expand{nullptr};
  torch::nn::Conv2d project_conv{nullptr};
  torch::nn::BatchNorm2d project_bn{nullptr};
  bool has_expand, se, residual;
  nn::Act act;
};
TORCH_MODULE(ChildBlock);

class ChildNetImpl : public torch::nn::Module {
 public:
  ChildNetImpl(const spec::SearchSpace& space, const spec::Arch& arch, int in_channels, int num_classes);
  // x: [N, C, R, R] at the arch's resolution.
  torch::Tensor forward(const torch::Tensor& x);

  spec::Arch arch;
  int in_channels, num_classes;
  torch::nn::Conv2d stem{nullptr};
  torch::nn::BatchNorm2d stem_bn{nullptr};
  std::vector<ChildBlock> blocks;
  torch::nn::Conv2d head{nullptr};
  torch::nn::BatchNorm2d head_bn{nullptr};
  torch::nn::Linear classifier{nullptr};
  nn::Act stem_act{}, head_act{};
  // family mlp (no stem, blocks or head): the flattened input through each hidden layer's
  // bias-free Linear, BN and activation, then the classifier.
  std::vector<torch::nn::Linear> fc;
  std::vector<torch::nn::BatchNorm1d> fc_bn;
  std::vector<nn::Act> fc_act;
  // family cell (no stem, blocks or head of the above): the network of the chosen ops, registered
  // as "net" like the supernet's.
  cell::CellNet cell_net{nullptr};
};
TORCH_MODULE(ChildNet);

}  // namespace nas::families
