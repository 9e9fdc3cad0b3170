#pragma once
// Family resnet's modules: the supernet's elastic stem, bottleneck blocks and classifier, and a
// child's static ones (families/modules.h).
#include <torch/torch.h>

#include <vector>

#include "families/modules.h"
#include "families/resnet/resnet.h"

namespace nas::families::resnet {

const TorchFamily& torch_family();

// One bottleneck block of a child, registered as "stage<i>_block<b>" (conv1/bn1, conv2/bn2,
// conv3/bn3, and shortcut_conv/shortcut_bn where the shape changes).
class ChildBlockImpl : public torch::nn::Module {
 public:
  ChildBlockImpl(int64_t in, int64_t mid, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, shortcut_conv{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, shortcut_bn{nullptr};
};
TORCH_MODULE(ChildBlock);

// A child's modules: "stem", "stem_bn", its blocks, "classifier".
class ChildModulesImpl : public ChildModules {
 public:
  ChildModulesImpl(torch::nn::Module& host, const Space& s, const Choices& a, int in_channels, int num_classes);
  torch::Tensor forward(const torch::Tensor& x) override;
  void export_onnx(exporter::GraphBuilder& b) override;

  torch::nn::Conv2d stem{nullptr};
  torch::nn::BatchNorm2d stem_bn{nullptr};
  std::vector<ChildBlock> blocks;
  torch::nn::Linear classifier{nullptr};
};

}  // namespace nas::families::resnet
