#pragma once
// Elastic (weight-shared) ops. Each holds one max-size weight; a child uses prefix slices
// (output channels weight[:out], input channels [:, :in], BN [:C]) and centre-cropped kernels.
// Slices are views, so gradients flow into the shared weight.
#include <torch/torch.h>

#include <functional>

#include <string>

namespace nas::nn {

enum class Act { kReLU, kReLU6, kHSwish, kSwish, kGELU, kTanh };
Act parse_act(const std::string& name);
torch::Tensor apply_act(const torch::Tensor& x, Act a);

// NHWC layout for the rest of the network. A 1-channel input is ambiguous (both layouts at once),
// so the stem's output is converted explicitly; oneDNN's convolutions, depthwise above all, run
// several times faster in NHWC on CPU, backward included. NAS_CHANNELS_LAST=0 in the environment
// keeps NCHW (the benchmark baseline).
torch::Tensor to_channels_last(const torch::Tensor& x);

// Centre crop of a [O, I, K, K] kernel to k x k.
torch::Tensor crop_kernel(const torch::Tensor& w, int64_t k);

class DynamicConv2dImpl : public torch::nn::Module {
 public:
  // depthwise: one filter per channel (groups = channels), weight [max_out, 1, K, K].
  DynamicConv2dImpl(int64_t max_in, int64_t max_out, int64_t max_kernel, int64_t stride, bool depthwise);
  // in = x.size(1); out channels and kernel size as given (out must equal in when depthwise).
  torch::Tensor forward(const torch::Tensor& x, int64_t out, int64_t kernel);
  torch::Tensor active_weight(int64_t in, int64_t out, int64_t kernel) const;

  torch::Tensor weight;
  int64_t max_in, max_out, max_kernel, stride;
  bool depthwise;
};
TORCH_MODULE(DynamicConv2d);

// Works on [N, C, H, W] and on [N, C] (the mlp family's hidden layers) alike.
class DynamicBatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit DynamicBatchNorm2dImpl(int64_t max_channels, double momentum = 0.1, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);

  // Calibration: running statistics become the average over all images seen, each batch weighted
  // by its size (momentum B / (seen + B)), instead of an exponential moving average.
  void begin_calibration() { calib_seen_ = 0; }
  void end_calibration() { calib_seen_ = -1; }

  torch::Tensor weight, bias, running_mean, running_var;
  int64_t max_channels;
  double momentum, eps;

 private:
  int64_t calib_seen_ = -1;  // images seen while calibrating; -1: not calibrating
};
TORCH_MODULE(DynamicBatchNorm2d);

// Synchronized BN for data-parallel training: while `sum` is set, training-mode forward passes
// (not BN recalibration) normalize with the statistics of every rank's batch together. `sum` sums
// a tensor over the ranks, and in backward sums its gradient over the ranks. Empty: off.
void set_batchnorm_sync(std::function<torch::Tensor(const torch::Tensor&)> sum);

class DynamicLinearImpl : public torch::nn::Module {
 public:
  // with_bias false: no bias (a BN follows), `bias` stays undefined.
  DynamicLinearImpl(int64_t max_in, int64_t max_out, bool with_bias = true);
  torch::Tensor forward(const torch::Tensor& x, int64_t out);
  torch::Tensor weight, bias;
  int64_t max_in, max_out;
};
TORCH_MODULE(DynamicLinear);

// Inverted residual block (MobileNetV2/V3, as in once-for-all): [1x1 expand, BN, act],
// depthwise kxk, BN, act, [squeeze-excite], 1x1 project, BN, [+ identity].
class DynamicMBConvImpl : public torch::nn::Module {
 public:
  DynamicMBConvImpl(int64_t max_in, int64_t max_out, int64_t max_expand, int64_t max_kernel, int64_t stride,
                    bool has_expand, bool se, Act act, bool residual);
  // drop_rate: stochastic depth of the residual branch in training mode (0: off).
  torch::Tensor forward(const torch::Tensor& x, int64_t expand, int64_t kernel, int64_t out, double drop_rate = 0.0);

  DynamicConv2d expand_conv{nullptr};
  DynamicBatchNorm2d expand_bn{nullptr};
  DynamicConv2d dw_conv{nullptr};
  DynamicBatchNorm2d dw_bn{nullptr};
  DynamicLinear se_reduce{nullptr}, se_expand{nullptr};
  DynamicConv2d project_conv{nullptr};
  DynamicBatchNorm2d project_bn{nullptr};
  bool has_expand, se, residual;
  Act act;
};
TORCH_MODULE(DynamicMBConv);

// Squeeze-excite on [N, C, H, W] given the two linear maps (shared by dynamic and static nets).
torch::Tensor squeeze_excite(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& b1,
                             const torch::Tensor& w2, const torch::Tensor& b2);

// Calls begin_calibration()/end_calibration() on every DynamicBatchNorm2d below `m`.
void set_bn_calibration(torch::nn::Module& m, bool on);

}  // namespace nas::nn
