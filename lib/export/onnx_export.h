#pragma once
// ONNX export's building blocks: a graph built node by node (GraphBuilder), BatchNorm folding, and
// the checked, serialized model around a graph that a family's child modules write
// (families::ChildModules::export_onnx). Opset 14 (HardSwish), NCHW float input "input"
// [batch, C, R, R] with a symbolic batch, output "logits". Built with Debian's libonnx-dev
// (protobuf) when CMake finds it; checked with the ONNX checker.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nn/elastic.h"

namespace onnx {
class GraphProto;
class NodeProto;
}  // namespace onnx

namespace nas::exporter {

inline constexpr int kOnnxOpset = 14;

// Whether this build can write ONNX (CMake found libonnx-dev).
bool onnx_available();

// A convolution's weight and a BatchNorm's statistics folded into one weight and bias (eval-mode
// semantics: y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta).
std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& conv_weight, torch::nn::BatchNorm2d& bn);
// The same for a Linear's [out, in] weight and the BatchNorm1d after it (the mlp family).
std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& linear_weight, torch::nn::BatchNorm1d& bn);

// Builds the graph node by node; names are unique by construction. Each method returns the name
// of the value it wrote.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}
  std::string initializer(const std::string& name, const torch::Tensor& t);
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out);
  static void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v);
  static void integer(onnx::NodeProto* n, const char* name, int64_t v);
  static void real(onnx::NodeProto* n, const char* name, float v);
  // A convolution with its BatchNorm folded in (or with its own bias when bn is null).
  std::string conv(const std::string& prefix, const std::string& x, torch::nn::Conv2d& c, torch::nn::BatchNorm2d* bn);
  // An inference BatchNormalization node (where no conv precedes it to fold into).
  std::string batch_norm(const std::string& prefix, const std::string& x, torch::nn::BatchNorm2d& bn);
  std::string int64s(const std::string& name, const std::vector<int64_t>& v);
  std::string act(const std::string& x, nn::Act a);
  std::string scalar(float v);

 private:
  onnx::GraphProto* g_;
  int consts_ = 0;
};

// The ONNX model of a network named `name` with input [batch, in_channels, resolution, resolution]
// and output [batch, num_classes], whose graph `build` writes; serialized after
// onnx::checker::check_model passed. UsageError when this build has no ONNX support.
std::string onnx_model(const std::string& name, int64_t in_channels, int resolution, int64_t num_classes,
                       const std::function<void(GraphBuilder&)>& build);

}  // namespace nas::exporter
