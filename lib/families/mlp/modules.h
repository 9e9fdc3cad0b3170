#pragma once
// Family mlp's modules: the supernet's elastic hidden layers and shared classifier, and a child's
// static ones (families/modules.h).
#include <torch/torch.h>

#include <vector>

#include "families/mlp/mlp.h"
#include "families/modules.h"
#include "nn/elastic.h"

namespace nas::families::mlp {

const TorchFamily& torch_family();

// A child's modules: the flattened input through each hidden layer's bias-free Linear, BN and
// activation ("layer<i>_fc", "layer<i>_bn"), then the classifier.
class ChildModulesImpl : public ChildModules {
 public:
  ChildModulesImpl(torch::nn::Module& host, const Choices& a, int64_t inputs, int num_classes);
  torch::Tensor forward(const torch::Tensor& x) override;
  void export_onnx(exporter::GraphBuilder& b) override;

  std::vector<torch::nn::Linear> fc;
  std::vector<torch::nn::BatchNorm1d> fc_bn;
  std::vector<nn::Act> fc_act;
  torch::nn::Linear classifier{nullptr};
};

}  // namespace nas::families::mlp
