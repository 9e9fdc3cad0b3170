#pragma once
// ONNX export of a sliced child: every BatchNorm folded into the convolution before it, opset 14
// (HardSwish), NCHW float input "input" [batch, C, R, R] with a symbolic batch, output "logits".
// Built with Debian's libonnx-dev (protobuf) when CMake finds it; checked with the ONNX checker.
#include <string>
#include <utility>

#include <torch/torch.h>

#include "families/modules.h"

namespace nas::exporter {

inline constexpr int kOnnxOpset = 14;

// Whether this build can write ONNX (CMake found libonnx-dev).
bool onnx_available();

// The ONNX model of `net` (in eval mode), serialized, after onnx::checker::check_model passed.
// UsageError when this build has no ONNX support.
std::string export_onnx(families::ChildNet& net);

// A convolution's weight and a BatchNorm's statistics folded into one weight and bias (eval-mode
// semantics: y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta).
std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& conv_weight, torch::nn::BatchNorm2d& bn);
// The same for a Linear's [out, in] weight and the BatchNorm1d after it (the mlp family).
std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& linear_weight, torch::nn::BatchNorm1d& bn);

}  // namespace nas::exporter
