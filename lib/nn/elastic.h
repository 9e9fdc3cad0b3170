#pragma once
// Elastic (weight-shared) ops. Each holds one max-size weight; a child uses prefix slices
// (output channels weight[:out], input channels [:, :in], BN [:C]) and centre-cropped kernels.
// Slices are views, so gradients flow into the shared weight.
#include <torch/torch.h>

#include <functional>
#include <memory>

#include <string>
#include <vector>

namespace nas::nn {

enum class Act { kReLU, kReLU6, kHSwish, kSwish, kGELU, kTanh };
Act parse_act(const std::string& name);
// Every activation of the networks (supernets and children of every family) goes through here.
torch::Tensor apply_act(const torch::Tensor& x, Act a);

// While one is in scope on this thread, apply_act reports each activation's input to `tap` (the
// zero-cost proxy nwot reads which units are active). Not nested; no effect on other threads.
class ActivationTapScope {
 public:
  explicit ActivationTapScope(std::function<void(const torch::Tensor& pre_activation)> tap);
  ~ActivationTapScope();
  ActivationTapScope(const ActivationTapScope&) = delete;
  ActivationTapScope& operator=(const ActivationTapScope&) = delete;
};

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

// Running statistics recorded instead of applied. While a RunningStatsScope is alive on a thread,
// training-mode forward passes of DynamicBatchNorm2d on that thread (not BN recalibration)
// normalize as usual but leave the running buffers alone: each layer's batch (or, synchronized,
// group) mean and unbiased variance go to the log instead. The shard workers of a training step
// share the buffers, so they must not update them in place; apply() replays the updates after the
// step in pass order, and a skipped step never applies them.
class RunningStatsLog {
 public:
  // running = (1 - momentum) * running + momentum * batch, entry by entry in recording order.
  void apply() const;

  struct Entry {
    torch::Tensor running_mean, running_var;  // the layer's narrowed buffers (views)
    torch::Tensor batch_mean, batch_var;      // this pass's statistics (the variance unbiased)
    double momentum;
  };
  static void update(const Entry& e);  // one entry, in place

 private:
  friend class DynamicBatchNorm2dImpl;
  std::vector<Entry> entries_;
};
class RunningStatsScope {
 public:
  explicit RunningStatsScope(RunningStatsLog* log);  // null: record nothing (statistics applied in place)
  ~RunningStatsScope();
  RunningStatsScope(const RunningStatsScope&) = delete;
  RunningStatsScope& operator=(const RunningStatsScope&) = delete;

 private:
  RunningStatsLog* previous_;
};

// Per-row random masks (dropout, drop-connect) that do not depend on how a batch is split among
// workers. While a RowNoiseScope is alive on a thread, every mask is drawn for all `total` rows of
// the batch from the scope's own generator, seeded with `seed`, and the thread keeps its rows
// [first, first + rows): the draws, one mask after another, are those that LibTorch's default
// generator would make after torch::manual_seed(seed) for the whole batch. Without a scope, masks
// come from the default generator. CPU tensors only.
class RowNoiseScope {
 public:
  RowNoiseScope(uint64_t seed, int64_t first, int64_t total);
  ~RowNoiseScope();
  RowNoiseScope(const RowNoiseScope&) = delete;
  RowNoiseScope& operator=(const RowNoiseScope&) = delete;
  struct State;  // the generator and the rows (elastic.cpp)

 private:
  std::unique_ptr<State> state_;
  State* previous_;
};
// A tensor of `shape` (rows first: like.size(0)) with like's options, each element 1 with
// probability `keep`, else 0 (the current RowNoiseScope's rows, if any).
torch::Tensor row_bernoulli(const torch::Tensor& like, std::vector<int64_t> shape, double keep);
// Dropout in training mode with torch::dropout's arithmetic (x * (mask / (1 - p))), its mask from
// row_bernoulli.
torch::Tensor dropout_rows(const torch::Tensor& x, double p);

// Synchronized BN for data-parallel training, on the calling thread: while `sum` is set,
// training-mode forward passes (not BN recalibration) normalize with the statistics of every group
// member's batch together (the members: processes, or the shard workers of a training step). `sum`
// sums a tensor over the members (no gradient needed); it is called once in each forward and once
// in each backward of a layer, in the same order on every member. Empty: off.
using GroupSum = std::function<torch::Tensor(const torch::Tensor&)>;
void set_batchnorm_sync(GroupSum sum);
const GroupSum& batchnorm_sync();  // the calling thread's (empty: off)

class DynamicLinearImpl : public torch::nn::Module {
 public:
  // with_bias false: no bias (a BN follows), `bias` stays undefined.
  DynamicLinearImpl(int64_t max_in, int64_t max_out, bool with_bias = true);
  torch::Tensor forward(const torch::Tensor& x, int64_t out);
  torch::Tensor weight, bias;
  int64_t max_in, max_out;
};
TORCH_MODULE(DynamicLinear);

// The shape of an inverted residual block: a child's block (families::mbconv::ChildBlock), or the largest shape
// that a supernet's block (DynamicMBConv) can take, its in, out, expand and kernel then maxima.
struct MBConvOptions {
  MBConvOptions(int64_t in, int64_t out) : in_(in), out_(out) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  TORCH_ARG(int64_t, expand) = 1;
  TORCH_ARG(int64_t, kernel) = 3;
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(bool, has_expand) = false;  // a 1x1 expansion conv (spaces whose expand ratios exceed 1)
  TORCH_ARG(bool, se) = false;          // squeeze-excite
  TORCH_ARG(Act, act) = Act::kReLU;
  TORCH_ARG(bool, residual) = false;    // + identity (in == out, stride 1)
};

// Inverted residual block (MobileNetV2/V3, as in once-for-all): [1x1 expand, BN, act],
// depthwise kxk, BN, act, [squeeze-excite], 1x1 project, BN, [+ identity].
class DynamicMBConvImpl : public torch::nn::Module {
 public:
  explicit DynamicMBConvImpl(const MBConvOptions& max);
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

// How copy_state_by_name fits a tensor of the supernet to the child's: as it is (same shape), or
// its leading slice (the first channels of each dimension, a conv kernel centre-cropped).
enum class Fit { kSameShape, kLeadingSlice };
// Copies every parameter and buffer of `dst` from the one of the same name in `src` (a child's
// state from the supernet's; BatchNorm2d's num_batches_tracked, which DynamicBatchNorm2d lacks, is
// left alone), fitted by `fit`. Throws when a name is missing or a shape does not fit.
void copy_state_by_name(torch::nn::Module& dst, const torch::nn::Module& src, Fit fit = Fit::kSameShape);

// Copies the first dst.num_features channels of an elastic BN (weights, statistics, eps) into a
// static BatchNorm1d/2d: slicing a child out of a supernet.
template <typename BN>
void copy_bn_prefix(BN& dst, const DynamicBatchNorm2d& src) {
  const int64_t c = dst->options.num_features();
  dst->weight.copy_(src->weight.narrow(0, 0, c));
  dst->bias.copy_(src->bias.narrow(0, 0, c));
  dst->running_mean.copy_(src->running_mean.narrow(0, 0, c));
  dst->running_var.copy_(src->running_var.narrow(0, 0, c));
  dst->options.eps(src->eps);
}

}  // namespace nas::nn
