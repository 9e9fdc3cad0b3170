#include "nn/elastic.h"

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "supernet/cost.h"

namespace nas::nn {

Act parse_act(const std::string& name) {
  if (name == "relu") return Act::kReLU;
  if (name == "relu6") return Act::kReLU6;
  if (name == "hswish") return Act::kHSwish;
  if (name == "swish") return Act::kSwish;
  if (name == "gelu") return Act::kGELU;
  if (name == "tanh") return Act::kTanh;
  throw SpecError("unknown activation \"" + name + "\": expected relu, relu6, hswish, swish, gelu or tanh");
}

torch::Tensor apply_act(const torch::Tensor& x, Act a) {
  switch (a) {
    case Act::kReLU:
      return torch::relu(x);
    case Act::kReLU6:
      return torch::hardtanh(x, 0, 6);
    case Act::kHSwish:
      return torch::hardswish(x);
    case Act::kSwish:
      return torch::silu(x);
    case Act::kGELU:
      return torch::gelu(x);  // exact (erf), as PyTorch's default
    case Act::kTanh:
      return torch::tanh(x);
  }
  return x;
}

torch::Tensor to_channels_last(const torch::Tensor& x) {
  // NAS_CHANNELS_LAST=0 keeps NCHW: the baseline of scripts/bench/channels_last.sh.
  static const bool enabled = [] {
    const char* v = std::getenv("NAS_CHANNELS_LAST");
    return v == nullptr || std::string(v) != "0";
  }();
  return enabled && x.dim() == 4 ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

torch::Tensor crop_kernel(const torch::Tensor& w, int64_t k) {
  int64_t K = w.size(2);
  if (k == K) return w;
  int64_t off = (K - k) / 2;
  return w.narrow(2, off, k).narrow(3, off, k);
}

namespace {
// Kaiming-normal (fan_out), as torchvision's MobileNets initialise convolutions.
torch::Tensor kaiming_fan_out(std::vector<int64_t> shape) {
  int64_t fan_out = shape[0];
  for (size_t i = 2; i < shape.size(); ++i) fan_out *= shape[i];
  return torch::randn(shape) * std::sqrt(2.0 / static_cast<double>(fan_out));
}
}  // namespace

DynamicConv2dImpl::DynamicConv2dImpl(int64_t max_in_, int64_t max_out_, int64_t max_kernel_, int64_t stride_,
                                     bool depthwise_)
    : max_in(max_in_), max_out(max_out_), max_kernel(max_kernel_), stride(stride_), depthwise(depthwise_) {
  weight = register_parameter(
      "weight", kaiming_fan_out({max_out, depthwise ? 1 : max_in, max_kernel, max_kernel}));
}

torch::Tensor DynamicConv2dImpl::active_weight(int64_t in, int64_t out, int64_t kernel) const {
  torch::Tensor w = weight.narrow(0, 0, out);
  if (!depthwise) w = w.narrow(1, 0, in);
  return crop_kernel(w, kernel);
}

torch::Tensor DynamicConv2dImpl::forward(const torch::Tensor& x, int64_t out, int64_t kernel) {
  int64_t in = x.size(1);
  torch::Tensor w = active_weight(in, depthwise ? in : out, kernel).contiguous();
  return torch::conv2d(x, w, {}, stride, kernel / 2, 1, depthwise ? in : 1);
}

DynamicBatchNorm2dImpl::DynamicBatchNorm2dImpl(int64_t c, double m, double e)
    : max_channels(c), momentum(m), eps(e) {
  weight = register_parameter("weight", torch::ones({c}));
  bias = register_parameter("bias", torch::zeros({c}));
  running_mean = register_buffer("running_mean", torch::zeros({c}));
  running_var = register_buffer("running_var", torch::ones({c}));
}

namespace {
std::function<torch::Tensor(const torch::Tensor&)>& batchnorm_sum() {
  static std::function<torch::Tensor(const torch::Tensor&)> f;
  return f;
}

// Batch norm over the batches of all ranks. Per-channel sums of (x - K) and (x - K)^2 and the count
// are summed over ranks in one collective; K, the running mean (the same on every rank), keeps
// E[d^2] - E[d]^2 free of cancellation. Running statistics get the global mean and the unbiased
// global variance, as torch::batch_norm does for one batch.
torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                              torch::Tensor rm, torch::Tensor rv, double momentum, double eps) {
  const int64_t c = x.size(1);
  std::vector<int64_t> dims{0}, shape(x.dim(), 1);
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  shape[1] = c;
  // Statistics in fp32 whatever the activations' type (bf16 autocast), as torch::batch_norm keeps them.
  const torch::Tensor xf = x.to(torch::kFloat);
  torch::Tensor k = rm.detach().to(torch::kFloat).clone().view(shape);  // rm changes below
  torch::Tensor d = xf - k;
  torch::Tensor local = torch::cat({d.sum(dims), (d * d).sum(dims),
                                    torch::full({1}, static_cast<double>(x.numel() / c), xf.options())});
  torch::Tensor all = batchnorm_sum()(local);
  torch::Tensor n = all.narrow(0, 2 * c, 1).detach();
  torch::Tensor m1 = all.narrow(0, 0, c) / n;
  torch::Tensor var = (all.narrow(0, c, c) / n - m1 * m1).clamp_min(0.0);
  torch::Tensor mean = m1 + k.view({c});
  {
    torch::NoGradGuard ng;
    double count = n.item<double>();
    rm.mul_(1.0 - momentum).add_(mean.detach().to(rm.scalar_type()) * momentum);
    rv.mul_(1.0 - momentum).add_(var.detach().to(rv.scalar_type()) * (momentum * count / std::max(1.0, count - 1.0)));
  }
  torch::Tensor inv = torch::rsqrt(var + eps);
  torch::Tensor y = (xf - mean.view(shape)) * (inv * w.to(torch::kFloat)).view(shape) + b.to(torch::kFloat).view(shape);
  return y.to(x.scalar_type());
}
}  // namespace

void set_batchnorm_sync(std::function<torch::Tensor(const torch::Tensor&)> sum) { batchnorm_sum() = std::move(sum); }

torch::Tensor DynamicBatchNorm2dImpl::forward(const torch::Tensor& x) {
  int64_t c = x.size(1);
  double m = momentum;
  bool training = is_training();
  if (training && calib_seen_ >= 0) {
    int64_t n = x.size(0);
    if (x.numel() / c < 2) {
      training = false;  // one value per channel has no variance: leave the statistics alone
    } else {
      m = static_cast<double>(n) / static_cast<double>(calib_seen_ + n);
      calib_seen_ += n;
    }
  }
  // One value per channel has no variance: LibTorch would write NaN into the running variance,
  // which no recalibration repairs (an mlp layer at batch size 1).
  NAS_CHECK(!training || x.numel() / c >= 2, SpecError,
            "batch_size: BatchNorm needs more than 1 value per channel when training, found a batch of " << x.size(0)
                << " with " << x.numel() / c << " value(s) per channel (use a batch size of at least 2)");
  if (training && calib_seen_ < 0 && batchnorm_sum())
    return sync_batch_norm(x, weight.narrow(0, 0, c), bias.narrow(0, 0, c), running_mean.narrow(0, 0, c),
                           running_var.narrow(0, 0, c), m, eps);
  // Narrowed running stats are views: batch_norm updates the shared buffers in place.
  return torch::batch_norm(x, weight.narrow(0, 0, c), bias.narrow(0, 0, c), running_mean.narrow(0, 0, c),
                           running_var.narrow(0, 0, c), training, m, eps, false);
}

DynamicLinearImpl::DynamicLinearImpl(int64_t in, int64_t out, bool with_bias) : max_in(in), max_out(out) {
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", torch::empty({out, in}).uniform_(-bound, bound));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor DynamicLinearImpl::forward(const torch::Tensor& x, int64_t out) {
  int64_t in = x.size(1);
  return torch::linear(x, weight.narrow(0, 0, out).narrow(1, 0, in),
                       bias.defined() ? bias.narrow(0, 0, out) : torch::Tensor());
}

torch::Tensor squeeze_excite(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& b1,
                             const torch::Tensor& w2, const torch::Tensor& b2) {
  torch::Tensor s = x.mean({2, 3});
  s = torch::relu(torch::linear(s, w1, b1));
  s = torch::linear(s, w2, b2);
  s = torch::hardsigmoid(s);
  return x * s.unsqueeze(2).unsqueeze(3);
}

DynamicMBConvImpl::DynamicMBConvImpl(int64_t max_in, int64_t max_out, int64_t max_expand, int64_t max_kernel,
                                     int64_t stride, bool has_expand_, bool se_, Act act_, bool residual_)
    : has_expand(has_expand_), se(se_), residual(residual_), act(act_) {
  int64_t max_mid = has_expand ? max_in * max_expand : max_in;
  if (has_expand) {
    expand_conv = register_module("expand_conv", DynamicConv2d(max_in, max_mid, 1, 1, false));
    expand_bn = register_module("expand_bn", DynamicBatchNorm2d(max_mid));
  }
  dw_conv = register_module("dw_conv", DynamicConv2d(max_mid, max_mid, max_kernel, stride, true));
  dw_bn = register_module("dw_bn", DynamicBatchNorm2d(max_mid));
  if (se) {
    int64_t max_red = supernet::se_channels(static_cast<int>(max_mid));
    se_reduce = register_module("se_reduce", DynamicLinear(max_mid, max_red));
    se_expand = register_module("se_expand", DynamicLinear(max_red, max_mid));
  }
  project_conv = register_module("project_conv", DynamicConv2d(max_mid, max_out, 1, 1, false));
  project_bn = register_module("project_bn", DynamicBatchNorm2d(max_out));
  // Zero-init of the last BN gamma of residual blocks: each block starts as the identity.
  if (residual) {
    torch::NoGradGuard g;
    project_bn->weight.zero_();
  }
}

torch::Tensor DynamicMBConvImpl::forward(const torch::Tensor& x, int64_t expand, int64_t kernel, int64_t out,
                                         double drop_rate) {
  int64_t in = x.size(1);
  torch::Tensor h = x;
  if (has_expand) h = apply_act(expand_bn(expand_conv(h, in * expand, 1)), act);
  h = apply_act(dw_bn(dw_conv(h, h.size(1), kernel)), act);
  if (se) {
    int64_t mid = h.size(1);
    int64_t red = supernet::se_channels(static_cast<int>(mid));
    h = squeeze_excite(h, se_reduce->weight.narrow(0, 0, red).narrow(1, 0, mid), se_reduce->bias.narrow(0, 0, red),
                       se_expand->weight.narrow(0, 0, mid).narrow(1, 0, red), se_expand->bias.narrow(0, 0, mid));
  }
  h = project_bn(project_conv(h, out, 1));
  if (residual) {
    TORCH_CHECK(in == out, "residual block with different in/out widths");
    if (drop_rate > 0 && is_training()) {
      // Drop the whole branch per sample, rescale the kept ones (EfficientNet's drop-connect).
      double keep = 1.0 - drop_rate;
      torch::Tensor mask = torch::empty({h.size(0), 1, 1, 1}, h.options()).bernoulli_(keep);
      h = h * mask / keep;
    }
    h = h + x;
  }
  return h;
}

void set_bn_calibration(torch::nn::Module& m, bool on) {
  for (auto& mod : m.modules(/*include_self=*/false)) {
    if (auto* bn = mod->as<DynamicBatchNorm2dImpl>()) {
      if (on)
        bn->begin_calibration();
      else
        bn->end_calibration();
    }
  }
}

}  // namespace nas::nn
