#include "nn/elastic.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "nn/shapes.h"

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

namespace {
thread_local std::function<void(const torch::Tensor&)>* activation_tap = nullptr;
}  // namespace

ActivationTapScope::ActivationTapScope(std::function<void(const torch::Tensor&)> tap) {
  NAS_CHECK(activation_tap == nullptr, Error, "ActivationTapScope: a tap is already in scope on this thread");
  activation_tap = new std::function<void(const torch::Tensor&)>(std::move(tap));
}
ActivationTapScope::~ActivationTapScope() {
  delete activation_tap;
  activation_tap = nullptr;
}

torch::Tensor apply_act(const torch::Tensor& x, Act a) {
  if (activation_tap) (*activation_tap)(x);
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
// The calling thread's group sum for synchronized BN (empty: off).
GroupSum& batchnorm_sum() {
  thread_local GroupSum f;
  return f;
}

// Batch statistics over every member of the group (processes, or the shard workers of a step).
struct GroupStats {
  torch::Tensor mean, var;  // per channel, fp32; var biased
  double count = 0;         // values per channel over the group
};

// Each member's mean and biased variance from LibTorch's own kernel, combined through one sum over
// the group of n (m - K), n (v + (m - K)^2) and n per channel: K, the running mean (the same on every
// member), keeps E[(x - K)^2] - E[x - K]^2 free of cancellation.
GroupStats group_stats(const torch::Tensor& xf, const torch::Tensor& shift) {
  torch::NoGradGuard ng;
  const int64_t c = xf.size(1);
  auto local = at::batch_norm_update_stats(xf, {}, {}, 0.0);
  const double n = static_cast<double>(xf.numel() / c);
  torch::Tensor k = shift.detach().to(torch::kFloat);
  torch::Tensor dm = std::get<0>(local) - k;
  torch::Tensor all = batchnorm_sum()(
      torch::cat({dm * n, (std::get<1>(local) + dm * dm) * n, torch::full({1}, n, xf.options())}));
  GroupStats s;
  s.count = all[2 * c].item<double>();
  torch::Tensor m1 = all.narrow(0, 0, c) / s.count;
  s.var = (all.narrow(0, c, c) / s.count - m1 * m1).clamp_min(0.0);
  s.mean = m1 + k;
  return s;
}

// Batch norm with the group's statistics: the forward is LibTorch's inference kernel on them; the
// backward sums Σdy and Σdy·(x - mean) over the group (one more group sum) and returns this
// member's input gradient and its own share of the weight and bias gradients. The backward uses
// the forward thread's group sum: LibTorch runs a CUDA graph's backward on a thread of its own.
struct GroupBatchNormFn : public torch::autograd::Function<GroupBatchNormFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& xf,
                               const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& mean,
                               const torch::Tensor& var, double count, double eps) {
    torch::Tensor wf = weight.to(torch::kFloat), bf = bias.to(torch::kFloat);
    ctx->save_for_backward({xf, wf, mean, torch::rsqrt(var + eps)});
    ctx->saved_data["count"] = count;
    // The sum set on this thread outlives the step's backward passes (the trainer's scopes).
    ctx->saved_data["sum"] = reinterpret_cast<int64_t>(&batchnorm_sum());
    return torch::batch_norm(xf, wf, bf, mean, var, /*training=*/false, 0.0, eps, false);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &xf = saved[0], &wf = saved[1], &mean = saved[2], &invstd = saved[3];
    const double count = ctx->saved_data["count"].toDouble();
    const int64_t c = xf.size(1);
    torch::Tensor dy = grads[0].to(torch::kFloat);
    // This member's Σdy (the bias gradient) and Σdy·(x - mean)·invstd (the weight gradient), in one
    // pass of LibTorch's backward kernel.
    auto local = at::native_batch_norm_backward(dy, xf, wf, {}, {}, mean, invstd, true, 0.0, {false, true, true});
    const torch::Tensor& gw = std::get<1>(local);
    const torch::Tensor& gb = std::get<2>(local);
    const GroupSum& sum = *reinterpret_cast<const GroupSum*>(ctx->saved_data["sum"].toInt());
    NAS_CHECK(sum, Error, "synchronized batch norm: the group sum was unset before the backward pass");
    torch::Tensor all = sum(torch::cat({gb, gw}));
    torch::Tensor mean_dy = all.narrow(0, 0, c) / count, mean_dy_xhat = all.narrow(0, c, c) / count;
    // dx = w invstd (dy - mean(dy) - xhat mean(dy xhat)), xhat = (x - mean) invstd, as
    // a dy + b (x - mean) + d: x - mean first, as LibTorch's kernel does (no cancellation).
    std::vector<int64_t> shape(xf.dim(), 1);
    shape[1] = c;
    torch::Tensor a = wf * invstd;
    torch::Tensor b = -a * invstd * mean_dy_xhat;
    torch::Tensor dx = torch::addcmul((-a * mean_dy).view(shape), dy, a.view(shape));
    dx.addcmul_(xf - mean.view(shape), b.view(shape));
    return {dx, gw, gb, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};
}  // namespace

void set_batchnorm_sync(GroupSum sum) { batchnorm_sum() = std::move(sum); }
const GroupSum& batchnorm_sync() { return batchnorm_sum(); }

namespace {
RunningStatsLog*& thread_stats_log() {
  thread_local RunningStatsLog* log = nullptr;
  return log;
}
}  // namespace

RunningStatsScope::RunningStatsScope(RunningStatsLog* log) : previous_(thread_stats_log()) { thread_stats_log() = log; }
RunningStatsScope::~RunningStatsScope() { thread_stats_log() = previous_; }

void RunningStatsLog::update(const Entry& e) {
  torch::NoGradGuard ng;
  e.running_mean.mul_(1.0 - e.momentum).add_(e.batch_mean.to(e.running_mean.scalar_type()), e.momentum);
  e.running_var.mul_(1.0 - e.momentum).add_(e.batch_var.to(e.running_var.scalar_type()), e.momentum);
}

void RunningStatsLog::apply() const {
  for (const auto& e : entries_) update(e);
}

struct RowNoiseScope::State {
  at::Generator generator;
  int64_t first, total;
};

namespace {
RowNoiseScope::State*& thread_noise() {
  thread_local RowNoiseScope::State* state = nullptr;
  return state;
}
}  // namespace

RowNoiseScope::RowNoiseScope(uint64_t seed, int64_t first, int64_t total)
    : state_(new State{at::make_generator<at::CPUGeneratorImpl>(seed), first, total}), previous_(thread_noise()) {
  thread_noise() = state_.get();
}
RowNoiseScope::~RowNoiseScope() { thread_noise() = previous_; }

torch::Tensor row_bernoulli(const torch::Tensor& like, std::vector<int64_t> shape, double keep) {
  RowNoiseScope::State* n = thread_noise();
  if (!n) return torch::empty(shape, like.options()).bernoulli_(keep);
  TORCH_CHECK(!like.is_cuda(), "row_bernoulli: a RowNoiseScope draws CPU masks only");
  const int64_t rows = shape[0];
  TORCH_CHECK(n->first + rows <= n->total, "row_bernoulli: rows ", n->first, "+", rows, " of a batch of ", n->total);
  shape[0] = n->total;
  return torch::empty(shape, like.options()).bernoulli_(keep, n->generator).narrow(0, n->first, rows);
}

torch::Tensor dropout_rows(const torch::Tensor& x, double p) {
  torch::Tensor noise = row_bernoulli(x, x.sizes().vec(), 1.0 - p);
  noise.div_(1.0 - p);
  return x * noise;
}

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
  if (training && calib_seen_ < 0 && batchnorm_sum()) {
    // Synchronized: the group's statistics normalize, and go to the running ones (or to the log).
    const torch::Tensor xf = x.to(torch::kFloat);  // statistics in fp32 under bf16 autocast too
    GroupStats st = group_stats(xf, running_mean.narrow(0, 0, c));
    torch::Tensor unbiased = st.var * (st.count / std::max(1.0, st.count - 1.0));
    RunningStatsLog::Entry e{running_mean.narrow(0, 0, c), running_var.narrow(0, 0, c), st.mean, unbiased, m};
    if (thread_stats_log())
      thread_stats_log()->entries_.push_back(e);
    else
      RunningStatsLog::update(e);
    return GroupBatchNormFn::apply(xf, weight.narrow(0, 0, c), bias.narrow(0, 0, c), st.mean, st.var, st.count, eps)
        .to(x.scalar_type());
  }
  if (training && calib_seen_ < 0 && thread_stats_log()) {
    // Momentum 1 on zeroed buffers leaves exactly this batch's mean and unbiased variance in them.
    torch::Tensor mean = torch::zeros({c}, running_mean.options()), var = torch::zeros({c}, running_var.options());
    torch::Tensor y = torch::batch_norm(x, weight.narrow(0, 0, c), bias.narrow(0, 0, c), mean, var, true, 1.0, eps, false);
    thread_stats_log()->entries_.push_back({running_mean.narrow(0, 0, c), running_var.narrow(0, 0, c), mean, var, m});
    return y;
  }
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
  s = apply_act(torch::linear(s, w1, b1), Act::kReLU);
  s = torch::linear(s, w2, b2);
  s = torch::hardsigmoid(s);
  return x * s.unsqueeze(2).unsqueeze(3);
}

DynamicMBConvImpl::DynamicMBConvImpl(const MBConvOptions& max)
    : has_expand(max.has_expand()), se(max.se()), residual(max.residual()), act(max.act()) {
  const int64_t max_in = max.in(), max_out = max.out(), max_kernel = max.kernel(), stride = max.stride();
  int64_t max_mid = has_expand ? max_in * max.expand() : max_in;
  if (has_expand) {
    expand_conv = register_module("expand_conv", DynamicConv2d(max_in, max_mid, 1, 1, false));
    expand_bn = register_module("expand_bn", DynamicBatchNorm2d(max_mid));
  }
  dw_conv = register_module("dw_conv", DynamicConv2d(max_mid, max_mid, max_kernel, stride, true));
  dw_bn = register_module("dw_bn", DynamicBatchNorm2d(max_mid));
  if (se) {
    int64_t max_red = se_channels(static_cast<int>(max_mid));
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
    int64_t red = se_channels(static_cast<int>(mid));
    h = squeeze_excite(h, se_reduce->weight.narrow(0, 0, red).narrow(1, 0, mid), se_reduce->bias.narrow(0, 0, red),
                       se_expand->weight.narrow(0, 0, mid).narrow(1, 0, red), se_expand->bias.narrow(0, 0, mid));
  }
  h = project_bn(project_conv(h, out, 1));
  if (residual) {
    TORCH_CHECK(in == out, "residual block with different in/out widths");
    if (drop_rate > 0 && is_training()) {
      // Drop the whole branch per sample, rescale the kept ones (EfficientNet's drop-connect).
      double keep = 1.0 - drop_rate;
      torch::Tensor mask = row_bernoulli(h, {h.size(0), 1, 1, 1}, keep);
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

namespace {
// The leading slice of `t` of the given sizes, each spatial dimension (2 and on: a conv kernel's)
// centre-cropped; undefined when `t` is smaller in some dimension.
torch::Tensor leading_slice(const torch::Tensor& t, at::IntArrayRef sizes) {
  if (t.dim() != static_cast<int64_t>(sizes.size())) return {};
  torch::Tensor s = t;
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t n = sizes[static_cast<size_t>(d)];
    if (n > t.size(d)) return {};
    s = s.narrow(d, d >= 2 ? (t.size(d) - n) / 2 : 0, n);
  }
  return s;
}
}  // namespace

void copy_state_by_name(torch::nn::Module& dst, const torch::nn::Module& src, Fit fit) {
  torch::NoGradGuard g;
  auto sp = src.named_parameters(true);
  auto sb = src.named_buffers(true);
  auto copy = [&](const std::string& name, torch::Tensor& t, bool buffer) {
    const torch::Tensor* from = buffer ? sb.find(name) : sp.find(name);
    if (!from && buffer && name.size() >= 19 && name.compare(name.size() - 19, 19, "num_batches_tracked") == 0) return;
    NAS_CHECK(from, Error, "slice: the supernet has no " << (buffer ? "buffer " : "parameter ") << name);
    const torch::Tensor fitted = fit == Fit::kLeadingSlice ? leading_slice(*from, t.sizes()) : *from;
    NAS_CHECK(fitted.defined() && fitted.sizes() == t.sizes(), Error,
              "slice: " << name << " is " << from->sizes() << " in the supernet, " << t.sizes() << " in the child");
    t.copy_(fitted);
  };
  for (auto& p : dst.named_parameters(true)) copy(p.key(), p.value(), false);
  for (auto& b : dst.named_buffers(true)) copy(b.key(), b.value(), true);
}

}  // namespace nas::nn
