#pragma once
// Family mbconv's modules: the supernet's elastic stem, inverted-residual blocks and head, and a
// child's static ones (families/modules.h).
#include <torch/torch.h>

#include <vector>

#include "families/mbconv/mbconv.h"
#include "families/modules.h"
#include "nn/elastic.h"

namespace nas::families::mbconv {

const TorchFamily& torch_family();

// A bias-free convolution with padding kernel/2, as every conv of a child has.
torch::nn::Conv2d conv_no_bias(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups = 1);
// The stem and the head exactly as a child runs them; TorchFamily::timed_op runs them alone with these.
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

// A child's modules: stem, blocks, head and classifier, registered on the child as "stem",
// "stem_bn", "stage<i>_block<b>", "head", "head_bn" and "classifier".
class ChildModulesImpl : public ChildModules {
 public:
  ChildModulesImpl(torch::nn::Module& host, const Space& s, const Choices& a, int in_channels, int num_classes);
  torch::Tensor forward(const torch::Tensor& x) override;
  void export_onnx(exporter::GraphBuilder& b) override;

  torch::nn::Conv2d stem{nullptr};
  torch::nn::BatchNorm2d stem_bn{nullptr};
  std::vector<ChildBlock> blocks;
  torch::nn::Conv2d head{nullptr};
  torch::nn::BatchNorm2d head_bn{nullptr};
  torch::nn::Linear classifier{nullptr};
  nn::Act stem_act{}, head_act{};
};

}  // namespace nas::families::mbconv
