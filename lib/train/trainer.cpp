#include "train/trainer.h"

#include <algorithm>
#include <fstream>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "core/build_info.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/datasets.h"
#include "dist/dist.h"
#include "eval/evaluate.h"
#include "families/sampling.h"
#include "nn/elastic.h"
#include "nn/precision.h"
#include "supernet/checkpoint.h"
#include "train/sampling_policy.h"
#include "train/workers.h"

namespace nas::train {

torch::Tensor label_loss(const torch::Tensor& logits, const torch::Tensor& y, double label_smoothing) {
  if (y.is_floating_point()) return torch::mse_loss(logits.squeeze(1), y);
  torch::Tensor logp = torch::log_softmax(logits, 1);
  torch::Tensor nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1);
  if (label_smoothing <= 0) return nll.mean();
  torch::Tensor smooth = -logp.mean(1);
  return ((1.0 - label_smoothing) * nll + label_smoothing * smooth).mean();
}

namespace {

// Soft cross-entropy to the teacher's probabilities at temperature T (scaled by T^2 so gradient
// magnitudes do not depend on T). Same gradients as KL(teacher || student).
torch::Tensor soft_ce(const torch::Tensor& logits, const torch::Tensor& teacher_prob, double T) {
  torch::Tensor logp = torch::log_softmax(logits / T, 1);
  return -(teacher_prob * logp).sum(1).mean() * (T * T);
}

// KL(teacher || student) at temperature T, scaled by T^2: soft_ce minus the teacher's entropy.
torch::Tensor kl_div(const torch::Tensor& logits, const torch::Tensor& teacher_prob, double T) {
  torch::Tensor logp = torch::log_softmax(logits / T, 1);
  torch::Tensor logt = torch::log(teacher_prob.clamp_min(1e-12));
  return (teacher_prob * (logt - logp)).sum(1).mean() * (T * T);
}

// Fault injection for the tests (NAS_FAULT_NAN_STEPS=3,4): the max child's loss at these steps is
// NaN, as if the run had diverged there. A malformed value is a usage error (exit 2), checked when
// training starts.
const std::vector<int64_t>& fault_nan_steps() {
  static const std::vector<int64_t> steps = [] {
    std::vector<int64_t> v;
    const char* e = std::getenv("NAS_FAULT_NAN_STEPS");
    if (!e) return v;
    std::istringstream in(e);
    std::string item;
    while (std::getline(in, item, ',')) {
      if (item.empty()) continue;
      char* end = nullptr;
      errno = 0;
      const long long s = std::strtoll(item.c_str(), &end, 10);
      NAS_CHECK(errno == 0 && end && *end == 0 && s >= 0, UsageError,
                "NAS_FAULT_NAN_STEPS: expected comma-separated step numbers (0, 1, ...), found \"" << e << "\"");
      v.push_back(s);
    }
    return v;
  }();
  return steps;
}
bool fault_nan_at(int64_t step) {
  const auto& steps = fault_nan_steps();
  return std::find(steps.begin(), steps.end(), step) != steps.end();
}

// The workers of a training run: on the CPU, shards of every batch trained at once, each on its
// share of the process's LibTorch threads; one (this thread, every LibTorch thread) on a GPU and in
// a job of several processes (which already share the machine's cores).
std::unique_ptr<WorkerPool> make_step_workers(int requested, int64_t batch_rows, const torch::Device& device,
                                              bool distributed) {
  const int threads = at::get_num_threads();
  int workers = default_workers(requested, threads, batch_rows);
  if (device.is_cuda() || distributed) {
    if (requested > 1) log_warn("--workers " + std::to_string(requested) + ": one worker on a GPU and in a job of several processes");
    workers = 1;
  }
  const int kernel_threads = std::max(1, threads / workers);
  if (workers > 1)
    log_info("workers: " + std::to_string(workers) + " shards of every batch at once, " +
             std::to_string(kernel_threads) + " LibTorch thread(s) each");
  return std::make_unique<WorkerPool>(workers, kernel_threads);
}

// Lines logged after the checkpoint a run resumes from would be logged again: drop them.
void drop_metrics_after(const std::string& path, int64_t step) {
  if (!is_regular_file(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (spec::json::parse(line).value("step", int64_t{0}) > step) continue;
    } catch (const spec::json::exception&) {
      continue;  // a line cut short by a crash
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

// The training loader of one epoch: seeded order and augmentation, pinned batches for a GPU.
data::LoaderOptions epoch_loader_options(const spec::TrainSpec& t, int64_t epoch, const torch::Device& device) {
  data::LoaderOptions lo;
  lo.batch_size = t.batch_size;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.crop_padding = t.data.crop_padding;
  lo.hflip = t.data.hflip;
  lo.seed = mix_seed(t.seed, 0xda7au);
  lo.epoch = epoch;
  lo.prefetch = t.data.prefetch_batches;
  lo.norm = normalization_of(t);
  lo.pin_memory = device.is_cuda();
  return lo;
}
}  // namespace

double lr_at(const spec::TrainSpec& t, int64_t step, int64_t total_steps, int64_t steps_per_epoch) {
  const double lr = spec::scaled_lr(t);
  int64_t warmup = static_cast<int64_t>(std::llround(t.warmup_epochs * static_cast<double>(steps_per_epoch)));
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (t.schedule == "constant") return lr;
  const double floor = t.final_lr_fraction * lr;
  if (t.schedule == "exponential") {
    double epochs = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
    return std::max(floor, lr * std::pow(t.decay_rate, epochs / t.decay_epochs));
  }
  double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup));
  double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return floor + (lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(supernet::Supernet& net, const spec::TrainSpec& t) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : net->parameters()) (p.dim() > 1 ? decay : no_decay).push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (t.optimizer == "rmsprop") {
    auto opts = [&](double wd) {
      return std::make_unique<torch::optim::RMSpropOptions>(
          torch::optim::RMSpropOptions(t.lr).alpha(t.rms_alpha).eps(t.rms_eps).momentum(t.momentum).weight_decay(wd));
    };
    groups.emplace_back(decay, opts(t.weight_decay));
    groups.emplace_back(no_decay, opts(0.0));
    return std::make_unique<torch::optim::RMSprop>(groups, torch::optim::RMSpropOptions(t.lr));
  }
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(t.lr).momentum(t.momentum).nesterov(t.nesterov).weight_decay(wd));
  };
  groups.emplace_back(decay, opts(t.weight_decay));
  groups.emplace_back(no_decay, opts(0.0));
  return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(t.lr));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) {
    if (auto* o = dynamic_cast<torch::optim::SGDOptions*>(&g.options()))
      o->lr(lr);
    else if (auto* r = dynamic_cast<torch::optim::RMSpropOptions*>(&g.options()))
      r->lr(lr);
  }
}

namespace {

// The students' loss against the teacher's output (or against the labels without distillation).
torch::Tensor student_loss(const torch::Tensor& logits, const torch::Tensor& y, const torch::Tensor& teacher,
                           const spec::TrainSpec& t) {
  if (!t.distillation) return label_loss(logits, y, t.label_smoothing);
  if (y.is_floating_point()) return label_loss(logits, teacher, 0);  // regression: MSE to its output
  return t.distill_loss == "kl" ? kl_div(logits, teacher, t.temperature) : soft_ce(logits, teacher, t.temperature);
}

// While alive, synchronized BN on this thread sums over `sum`'s group (nn::set_batchnorm_sync);
// an empty `sum` leaves the thread's setting alone.
struct BatchNormSyncScope {
  explicit BatchNormSyncScope(nn::GroupSum sum) : on(bool(sum)) {
    if (!on) return;
    previous = nn::batchnorm_sync();
    nn::set_batchnorm_sync(std::move(sum));
  }
  ~BatchNormSyncScope() {
    if (on) nn::set_batchnorm_sync(std::move(previous));
  }
  BatchNormSyncScope(const BatchNormSyncScope&) = delete;
  BatchNormSyncScope& operator=(const BatchNormSyncScope&) = delete;
  bool on;
  nn::GroupSum previous;
};

// The sum over a process group, for synchronized BN across ranks.
nn::GroupSum rank_sum(dist::Group* group) {
  return [group](const torch::Tensor& v) {
    std::vector<torch::Tensor> l{v.contiguous().clone()};
    group->allreduce_sum(l, "synchronized batch norm");
    return l[0];
  };
}

// What one shard's passes leave for the end of the step.
struct ShardPass {
  std::vector<torch::Tensor> losses;  // per child, detached, weighted by the shard's share
  std::vector<torch::Tensor> grads;   // per parameter, summed over the children in child order
  nn::RunningStatsLog bn;             // BN statistics of every pass, applied in child order
};

// Adds `g` to `acc`, as backward() accumulates: the first gradient of a parameter is taken (made
// contiguous; autograd::grad's outputs are this step's own tensors), the next ones added to it.
void accumulate(std::vector<torch::Tensor>& acc, const std::vector<torch::Tensor>& g) {
  if (acc.empty()) acc.resize(g.size());
  for (size_t k = 0; k < g.size(); ++k) {
    if (!g[k].defined()) continue;
    if (!acc[k].defined())
      acc[k] = g[k].contiguous();
    else
      acc[k].add_(g[k]);
  }
}

}  // namespace

CandidateLosses batch_losses(supernet::Supernet& net, const torch::Tensor& x, const torch::Tensor& y,
                             dist::Group* group, WorkerPool* workers) {
  return [&net, x, y, group, workers](const std::vector<spec::Arch>& candidates) {
    std::vector<double> loss(candidates.size());
    std::vector<std::function<void()>> tasks;
    for (size_t i = 0; i < candidates.size(); ++i)
      tasks.emplace_back([&, i] {
        torch::NoGradGuard no_grad;
        nn::RunningStatsLog discarded;
        nn::RunningStatsScope keep_running_stats(&discarded);
        nn::AutocastScope autocast(x.is_cuda());
        const spec::Arch& a = candidates[i];
        torch::Tensor logits = net->forward_child(supernet::resize_input(x, a.resolution), a, 0.0, 0.0);
        loss[i] = label_loss(logits.to(torch::kFloat), y, 0.0).item<double>();
      });
    if (workers != nullptr)
      workers->run(tasks);
    else
      for (auto& task : tasks) task();
    if (group != nullptr && group->size() > 1) {
      std::vector<torch::Tensor> l{torch::tensor(loss, torch::kDouble)};
      group->allreduce_sum(l, "the candidates' losses");
      for (size_t i = 0; i < loss.size(); ++i) loss[i] = l[0][static_cast<int64_t>(i)].item<double>() / group->size();
    }
    return loss;
  };
}

namespace {
// What every shard of one sandwich step trains, and on what.
struct SandwichPlan {
  supernet::Supernet& net;
  const spec::TrainSpec& t;
  int64_t step;
  std::string mode;                  // sandwich, uniform or fixed
  std::vector<spec::Arch> children;  // the first learns from the labels and teaches the others
  std::vector<torch::Tensor> params;
  torch::Tensor x, y;                // this rank's rows, on the device
  double share;                      // this rank's share of the global batch (see sandwich_step)
  uint64_t mask_seed;                // dropout and drop-connect masks
  bool cuda;
  int shards;
};

// Shard w trains every child, in order, on rows [rows * w / shards, rows * (w + 1) / shards); its
// losses are weighted by its share of the rows, and BN normalizes over all shards together.
void train_shard(const SandwichPlan& p, int w, ShardGroup& shard_group, ShardPass& pass) {
  const int64_t rows = p.x.size(0);
  const int64_t first = rows * w / p.shards, n = rows * (w + 1) / p.shards - first;
  const torch::Tensor xs = p.shards == 1 ? p.x : p.x.narrow(0, first, n);
  const torch::Tensor ys = p.shards == 1 ? p.y : p.y.narrow(0, first, n);
  const double weight = p.share * static_cast<double>(n) / static_cast<double>(rows);
  nn::GroupSum shard_sum;
  if (p.shards > 1) shard_sum = [&shard_group, w](const torch::Tensor& v) { return shard_group.sum(v, w); };
  BatchNormSyncScope shard_sync(std::move(shard_sum));
  nn::RunningStatsScope record(&pass.bn);
  std::optional<nn::RowNoiseScope> noise;
  if (!p.cuda) noise.emplace(p.mask_seed, first, rows);
  std::map<int, torch::Tensor> resized;  // one copy per resolution, shared by the children that use it
  torch::Tensor teacher;
  const spec::TrainSpec& t = p.t;
  for (size_t i = 0; i < p.children.size(); ++i) {
    const spec::Arch& a = p.children[i];
    auto it = resized.find(a.resolution);
    if (it == resized.end()) it = resized.emplace(a.resolution, supernet::resize_input(xs, a.resolution)).first;
    // The first child learns from the labels, with dropout and drop-connect unless it is a uniform
    // sample, and teaches the others under the sandwich rule.
    const bool regularized = i == 0 && p.mode != "uniform";
    torch::Tensor logits;
    {
      nn::AutocastScope autocast(p.cuda);
      logits = p.net->forward_child(it->second, a, regularized ? t.dropout : 0.0, regularized ? t.drop_connect : 0.0)
                   .to(torch::kFloat);
    }
    torch::Tensor loss;
    if (i == 0) {
      loss = label_loss(logits, ys, t.label_smoothing) * weight;
      if (regularized && fault_nan_at(p.step)) loss = loss * std::numeric_limits<double>::quiet_NaN();
      if (p.mode == "sandwich")  // regression: the students regress on its output instead of its probabilities
        teacher = ys.is_floating_point() ? logits.detach().squeeze(1) : torch::softmax(logits.detach() / t.temperature, 1);
    } else {
      loss = student_loss(logits, ys, teacher, t) * weight;
    }
    accumulate(pass.grads, torch::autograd::grad({loss}, p.params, {}, /*retain_graph=*/false,
                                                 /*create_graph=*/false, /*allow_unused=*/true));
    pass.losses.push_back(loss.detach());
  }
}

// Every shard's passes, at once on the workers when there are several.
std::vector<ShardPass> run_shards(const SandwichPlan& p, WorkerPool* workers) {
  ShardGroup shard_group(p.shards);
  std::vector<ShardPass> passes(static_cast<size_t>(p.shards));
  std::vector<std::function<void()>> tasks;
  for (int w = 0; w < p.shards; ++w)
    tasks.emplace_back([&, w] {
      try {
        train_shard(p, w, shard_group, passes[static_cast<size_t>(w)]);
      } catch (...) {
        shard_group.abort(std::current_exception());  // the other shards stop waiting for this one
        throw;
      }
    });
  if (p.shards > 1)
    workers->run(tasks);
  else
    tasks[0]();
  return passes;
}

// Gradients: the shards' sums added in shard order, set on the parameters. A parameter that no
// child of this step used (an op a cell space's single-path child did not sample) keeps an
// undefined gradient, and the optimizer skips it, with no weight decay and no stale momentum.
// Returns each child's loss, summed over the shards.
torch::Tensor merge_shards(const std::vector<ShardPass>& passes, const std::vector<torch::Tensor>& params,
                           size_t children) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : passes) accumulate(grads, p.grads);
  for (size_t k = 0; k < params.size(); ++k) params[k].mutable_grad() = grads[k];
  std::vector<torch::Tensor> losses;
  for (size_t i = 0; i < children; ++i) {
    torch::Tensor l = passes[0].losses[i];
    for (size_t w = 1; w < passes.size(); ++w) l = l + passes[w].losses[i];
    losses.push_back(l);
  }
  return torch::stack(losses);
}
}  // namespace

StepLosses sandwich_step(supernet::Supernet& net, torch::optim::Optimizer& opt, const data::Batch& batch,
                         const spec::TrainSpec& t, int64_t step, const torch::Device& device,
                         const spec::Arch* fixed, dist::Group* group, WorkerPool* workers) {
  net->train();
  const bool parallel = group != nullptr && group->size() > 1;
  // This rank's share of the global batch: its mean losses weighted by share * ranks / batch, so that
  // the average of the ranks' gradients is the gradient of the global batch's mean loss.
  const double share = parallel ? static_cast<double>(batch.x.size(0)) * group->size() / t.batch_size : 1.0;
  BatchNormSyncScope rank_sync(parallel && t.sync_bn ? rank_sum(group) : nullptr);
  // Dropout and drop-connect (the first child's only): each rank its own masks for its own rows;
  // the same masks however the rank's rows are split among its workers (nn::RowNoiseScope).
  uint64_t mask_seed = mix_seed(t.seed, static_cast<uint64_t>(step), 0xd0u);
  if (parallel) mask_seed = mix_seed(mask_seed, static_cast<uint64_t>(group->rank()));
  torch::manual_seed(mask_seed);
  const bool cuda = device.is_cuda();
  torch::Tensor x = batch.x.to(device, /*non_blocking=*/true);
  torch::Tensor y = batch.y.to(device, /*non_blocking=*/true);
  const std::string mode = fixed ? "fixed" : t.sampling;
  NAS_CHECK(mode != "fixed" || fixed != nullptr, UsageError, "sampling: fixed needs an arch (nas-train-supernet --arch)");
  std::vector<spec::Arch> children =
      step_children(net, t, step, fixed, batch_losses(net, x, y, group, cuda ? nullptr : workers));
  // The pool's workers, at most one per 2 rows (BN needs 2 values per shard).
  const int shards = workers != nullptr && !parallel && !cuda ? default_workers(workers->workers(), 0, x.size(0)) : 1;
  const SandwichPlan plan{net, t, step, mode, std::move(children), net->parameters(), x, y, share, mask_seed, cuda,
                          shards};
  std::vector<ShardPass> passes = run_shards(plan, workers);
  torch::Tensor all = merge_shards(passes, plan.params, plan.children.size());
  StepLosses out;
  if (parallel) {
    out.allreduce_s = dist::average_gradients(*group, plan.params, group->bucket_bytes());
    std::vector<torch::Tensor> l{all.to(torch::kDouble).contiguous()};
    group->allreduce_sum(l, "the loss all-reduce");
    all = l[0] / group->size();
  }
  all = all.to(torch::kCPU, torch::kDouble);
  if (t.on_nonfinite_loss == "skip" && !torch::isfinite(all).all().item<bool>()) {
    out.skipped = true;  // no update: the gradients dropped, the BN statistics never applied
  } else {
    passes[0].bn.apply();  // every shard normalized with the same (group) statistics: shard 0's suffice
    if (t.grad_clip > 0) torch::nn::utils::clip_grad_norm_(plan.params, t.grad_clip);
    opt.step();
  }
  auto v = all.accessor<double, 1>();
  out.max = out.min = out.random = v[0];
  if (mode == "sandwich") {
    out.min = v[1];
    out.random = 0;
    for (int64_t i = 2; i < all.size(0); ++i) out.random += v[i] / static_cast<double>(t.random_children);
  }
  return out;
}

data::Normalization normalization_of(const spec::TrainSpec& t) {
  data::Normalization n;
  n.mean = t.data.mean;
  n.std = t.data.std;
  return n;
}

std::vector<int64_t> calibration_indices(const spec::TrainSpec& t, const data::Split& split, int64_t count) {
  return data::seeded_subset(split.train, count >= 0 ? count : t.calib_images, mix_seed(t.seed, 0xca1b));
}

TrainData load_train_data(const spec::TrainSpec& t) {
  TrainData d;
  d.train_set = data::load_dataset(t.data, t.data.path, /*train=*/true);
  NAS_CHECK(t.data.mean.size() == 1 || static_cast<int>(t.data.mean.size()) == d.train_set.c, SpecError,
            t.source << ": data.mean: expected 1 or " << d.train_set.c << " values (one per image channel), found "
                                        << t.data.mean.size());
  NAS_CHECK(t.data.validation_images < d.train_set.n, SpecError,
            t.source << ": data.validation_images: expected fewer than the " << d.train_set.n
                     << " training images, found " << t.data.validation_images);
  d.split = data::make_split(d.train_set.n, t.data.validation_images, t.data.split_seed, t.data.train_limit);
  NAS_CHECK(static_cast<int64_t>(d.split.train.size()) >= t.batch_size, SpecError,
            t.source << ": batch_size: expected at most the " << d.split.train.size() << " training images, found "
                                                << t.batch_size);
  return d;
}

std::vector<double> train_arch_curve(const spec::SearchSpace& space, const spec::TrainSpec& t, const TrainData& d,
                                     const spec::Arch& arch, const std::vector<int64_t>& val, const CurveOptions& o) {
  const torch::Device device(o.device);
  spec::SearchSpace sp = space;
  spec::Arch a = arch;
  if (o.resolution > 0 && o.resolution != a.resolution) {
    // Lower fidelity by resolution: the space admits the extra input size (weights do not depend on it).
    if (std::find(sp.resolution.begin(), sp.resolution.end(), o.resolution) == sp.resolution.end()) {
      sp.resolution.push_back(o.resolution);
      std::sort(sp.resolution.begin(), sp.resolution.end());
    }
    a.resolution = o.resolution;
  }
  std::vector<int64_t> train_idx = data::seeded_subset(d.split.train, o.train_images, mix_seed(t.seed, 0x10f1));
  NAS_CHECK(!train_idx.empty(), SpecError, "lower-fidelity training: no training images");
  spec::TrainSpec tt = t;
  tt.batch_size = static_cast<int>(std::min<int64_t>(t.batch_size, static_cast<int64_t>(train_idx.size())));
  tt.on_nonfinite_loss = "stop";  // a diverging candidate fails its evaluation (checked below)
  torch::manual_seed(mix_seed(t.seed, fnv1a64(spec::arch_hash(arch))));
  supernet::Supernet net(sp, d.train_set.c, d.train_set.num_classes);
  net->init_last_bn_gamma(tt.zero_init_last_bn);
  net->set_active(a);
  net->to(device);
  auto opt = make_optimizer(net, tt);
  const int64_t spe = data::BatchLoader::batches_for(static_cast<int64_t>(train_idx.size()), tt.batch_size, true);
  const int64_t total = spe * o.epochs;
  const data::Normalization norm = normalization_of(tt);
  std::vector<double> curve;
  int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    data::LoaderOptions lo = epoch_loader_options(tt, epoch, device);
    data::BatchLoader loader(d.train_set, train_idx, lo);
    while (auto batch = loader.next()) {
      if (interrupt_requested()) throw Interrupted("interrupted during lower-fidelity training");
      set_lr(*opt, lr_at(tt, step, total, spe));
      StepLosses l = sandwich_step(net, *opt, *batch, tt, step, device, &a);
      NAS_CHECK(std::isfinite(l.max), Error,
                "lower-fidelity training of " << spec::arch_hash(arch) << " diverged at step " << step);
      ++step;
    }
    // BN statistics recalibrated first, as for every other child: after a few hundred steps the
    // moving averages are still close to their initial values.
    std::vector<int64_t> calib(train_idx.begin(),
                               train_idx.begin() + std::min<int64_t>(tt.calib_images, static_cast<int64_t>(train_idx.size())));
    eval::recalibrate_bn(net, d.train_set, calib, norm, tt.calib_batch_size, device);
    double acc = eval::evaluate_supernet(net, d.train_set, val, norm, o.eval_batch, device).acc;
    curve.push_back(acc);
    if (o.after_epoch && !o.after_epoch(epoch + 1, acc)) break;
  }
  return curve;
}

namespace {

// Loads the weights and buffers of the supernet checkpoint `path` into `net` (a fine-tune's start).
supernet::CheckpointMeta initialize_from(const std::string& path, const spec::SearchSpace& space,
                                         const data::ImageSet& set, supernet::Supernet& net) {
  supernet::CheckpointMeta m = supernet::read_checkpoint_meta(path);
  NAS_CHECK(m.type == "supernet", CheckpointError,
            path << ": --init-from: expected a supernet checkpoint, found a " << m.type);
  NAS_CHECK(spec::json_hash(spec::to_json(m.space)) == spec::json_hash(spec::to_json(space)), UsageError,
            path << ": --init-from: its search space (" << m.space.name << ") is not the one trained here ("
                 << space.name << ")");
  NAS_CHECK(m.in_channels == set.c && m.num_classes == set.num_classes, UsageError,
            path << ": --init-from: trained on " << m.in_channels << "-channel images of " << m.num_classes
                 << " classes, the data here has " << set.c << " and " << set.num_classes);
  supernet::restore_supernet(path, net, nullptr);
  log_info("weights from " + path + " (step " + std::to_string(m.step) + " of " + std::to_string(m.total_steps) + ")");
  return m;
}

// The validation accuracy of the max and min child (of `fixed` when set), each with its BN statistics
// recalibrated as a sliced child's are; the supernet's BN buffers and active child are restored
// afterwards, so that training goes on exactly as it would have without it.
// Restores a supernet's BN buffers, active child and training mode when it goes, however the
// evaluation in between ended (an interrupt throws from it).
class EvaluationGuard {
 public:
  explicit EvaluationGuard(supernet::Supernet& net) : net_(net), active_(net->active()) {
    for (const auto& b : net->buffers()) buffers_.push_back(b.detach().clone());
  }
  ~EvaluationGuard() {
    torch::NoGradGuard no_grad;
    auto now = net_->buffers();
    for (size_t i = 0; i < now.size(); ++i) now[i].copy_(buffers_[i]);
    net_->set_active(active_);
    net_->train();
  }
  EvaluationGuard(const EvaluationGuard&) = delete;
  EvaluationGuard& operator=(const EvaluationGuard&) = delete;

 private:
  supernet::Supernet& net_;
  spec::Arch active_;
  std::vector<torch::Tensor> buffers_;
};

spec::json validate_children(supernet::Supernet& net, const spec::TrainSpec& t, const TrainData& d,
                             const spec::Arch* fixed, const torch::Device& device) {
  const double t0 = now_seconds();
  EvaluationGuard restore(net);
  const data::Normalization norm = normalization_of(t);
  const std::vector<int64_t> calib = calibration_indices(t, d.split);
  std::vector<std::pair<std::string, spec::Arch>> children;
  if (fixed)
    children = {{"val_acc", *fixed}};
  else
    children = {{"val_acc_max", families::max_arch(net->space())}, {"val_acc_min", families::min_arch(net->space())}};
  spec::json out;
  for (const auto& [key, arch] : children) {
    net->set_active(arch);
    eval::recalibrate_bn(net, d.train_set, calib, norm, t.calib_batch_size, device);
    out[key] = eval::evaluate_supernet(net, d.train_set, d.split.val, norm, eval::default_eval_batch(device), device).acc;
  }
  out["validation_s"] = now_seconds() - t0;
  return out;
}

// The log line of a validation: "epoch 3: validation accuracy max 91.2% min 88.0%".
std::string validation_summary(const spec::json& m, int64_t epochs_done) {
  std::ostringstream line;
  line << "epoch " << epochs_done << ": validation accuracy";
  for (const auto& [key, value] : m.items())
    if (key.rfind("val_acc", 0) == 0) line << " " << (key == "val_acc" ? "" : key.substr(8) + " ") << 100 * value.get<double>() << "%";
  return line.str();
}

// Whether metrics.jsonl holds the validation line of `epochs_done`.
bool has_validation_line(const std::string& metrics_path, int64_t epochs_done) {
  std::ifstream in(metrics_path);
  const std::string key = "\"epochs_done\":" + std::to_string(epochs_done) + ",";
  for (std::string line; std::getline(in, line);)
    if (line.find(key) != std::string::npos) return true;
  return false;
}

}  // namespace

namespace {
// One call of train_supernet: its state, and the steps it goes through in order.
class SupernetRun {
 public:
  SupernetRun(const spec::SearchSpace& space, const spec::TrainSpec& t, const TrainOptions& o)
      : space_(space), t_(t), o_(o), device_(o.device), ckpt_(o.out_dir + "/supernet.ckpt"),
        metrics_path_(o.out_dir + "/metrics.jsonl"), norm_(normalization_of(t)) {}

  TrainSummary run() {
    load_data();
    build_network();
    plan_steps();
    restore_or_initialize();
    if (group_) start_together();
    describe_checkpoint();
    open_metrics();
    start_workers();
    for (int64_t epoch = step_ / spe_; epoch < t_.epochs && step_ < total_; ++epoch)
      if (!train_epoch(epoch)) break;
    if (step_ % spe_ == 0) validate(step_ / spe_);
    main_threads_.reset();
    save(step_ >= total_);
    progress_->finish(step_);
    if (fixed_ && step_ >= total_ && main_rank_) save_trained_child();
    if (group_) group_->barrier("the end of training");  // every rank returns after rank 0 has written
    sum_.steps = step_;
    sum_.seconds = now_seconds() - t0_;
    return sum_;
  }

 private:
  // Data first: a bad dataset or spec fails before anything is created on disk.
  void load_data() {
    NAS_CHECK(t_.sampling != "fixed" || o_.fixed_arch, UsageError,
              t_.source << ": sandwich.sampling: fixed trains one arch: give it with --arch");
    fault_nan_steps();  // a malformed value fails before any work
    d_ = load_train_data(t_);
    NAS_CHECK(t_.validate_every_epochs == 0 || !d_.split.val.empty(), SpecError,
              t_.source << ": validate_every_epochs: needs validation images (data.validation_images > 0)");
    // Data parallel over the processes of dist::world(): rank 0 writes every file.
    if (main_rank_) {
      make_dirs(o_.out_dir);
      check_output_path(ckpt_);
    }
    const auto& set = d_.train_set;
    log_info("data: " + std::to_string(d_.split.train.size()) + " training, " + std::to_string(d_.split.val.size()) +
             " validation images of " + std::to_string(set.h) + "x" + std::to_string(set.w) + "x" +
             std::to_string(set.c) + ", " + std::to_string(set.num_classes) + " classes");
  }

  void build_network() {
    torch::manual_seed(t_.seed);
    net_ = supernet::Supernet(space_, d_.train_set.c, d_.train_set.num_classes);
    net_->init_last_bn_gamma(t_.zero_init_last_bn);
    fixed_ = o_.fixed_arch ? &*o_.fixed_arch : nullptr;
    if (fixed_) {
      families::validate_arch(*fixed_, space_, "--arch");
      net_->set_active(*fixed_);
    }
    net_->to(device_);
    opt_ = make_optimizer(net_, t_);
  }

  void plan_steps() {
    spe_ = data::BatchLoader::batches_for(static_cast<int64_t>(d_.split.train.size()), t_.batch_size, true);
    total_ = spe_ * t_.epochs;
    NAS_CHECK(t_.batch_size >= 2 * world_, UsageError,
              t_.source << ": batch_size: expected at least 2 images per process for batch norm (" << world_
                        << " processes), found " << t_.batch_size);
  }

  // A fine-tune starts from --init-from's weights; --resume continues the checkpoint's run.
  void restore_or_initialize() {
    if (!o_.init_from.empty() && !o_.resume) {
      init_ = initialize_from(o_.init_from, space_, d_.train_set, net_);
      init_.init_from = o_.init_from;
      init_.init_digest = init_.digest;
    }
    if (!o_.resume) return;
    auto meta = supernet::restore_supernet(ckpt_, net_, opt_.get());
    init_.init_from = meta.init_from;  // a resumed fine-tune keeps its origin
    init_.init_digest = meta.init_digest;
    step_ = meta.step;
    earlier_sittings_s_ = meta.elapsed_s;
    NAS_CHECK(meta.total_steps == total_, UsageError,
              ckpt_ << ": cannot resume: the checkpoint plans " << meta.total_steps << " steps, this run " << total_
                    << " (data or epochs changed)");
    log_info("resuming from " + ckpt_ + " at step " + std::to_string(step_) + "/" + std::to_string(total_));
  }

  // Every rank must run the same recipe from the same state: the specs and the step compared, then
  // rank 0's weights and buffers copied to all (as DDP does at construction).
  void start_together() {
    spec::json fp = {{"train", spec::to_json(t_)}, {"space", spec::to_json(space_)}, {"step", step_},
                     {"fixed", fixed_ ? spec::arch_hash(*fixed_) : std::string()}};
    fp["train"]["data"].erase("path");  // may differ between machines (--data)
    group_->check_same(spec::compact_dump(fp), "train spec, search space or checkpoint step");
    std::vector<torch::Tensor> state;
    for (auto& p : net_->parameters()) state.push_back(p.detach());
    for (auto& b : net_->buffers()) state.push_back(b);
    {
      torch::NoGradGuard ng;
      group_->broadcast(state, 0, "the initial weight broadcast");
    }
    log_info("data parallel: " + std::to_string(world_) + " processes (" + group_->backend() + "), " +
             std::to_string(t_.batch_size / world_) + "-" + std::to_string((t_.batch_size + world_ - 1) / world_) +
             " images each of every batch of " + std::to_string(t_.batch_size) +
             (t_.sync_bn ? ", synchronized BN" : ", BN statistics per process"));
  }

  void describe_checkpoint() {
    meta_.space = space_;
    meta_.train = t_;
    meta_.in_channels = d_.train_set.c;
    meta_.num_classes = d_.train_set.num_classes;
    meta_.image_size = d_.train_set.h;
    meta_.total_steps = total_;
    if (fixed_) meta_.arch = *fixed_;  // a from-scratch run of one arch, or a fine-tune
    meta_.init_from = init_.init_from;
    meta_.init_digest = init_.init_digest;
  }

  double elapsed() const { return earlier_sittings_s_ + now_seconds() - t0_; }

  void save(bool finished) {
    if (!main_rank_) return;
    meta_.step = step_;
    meta_.finished = finished;
    meta_.elapsed_s = elapsed();
    meta_.created.clear();
    supernet::save_supernet(ckpt_, net_, meta_, opt_.get());
  }

  [[noreturn]] void stop_interrupted() {
    save(false);
    if (group_) group_->barrier("the interrupt checkpoint");  // all exit once rank 0 has written it
    throw Interrupted("interrupted at step " + std::to_string(step_) + "; checkpoint saved to " + ckpt_ +
                      (main_rank_ ? "" : " by rank 0") + " (continue with --resume)");
  }

  void open_metrics() {
    NAS_CHECK(o_.stop_after_steps <= 0 || o_.stop_after_steps > step_, UsageError,
              "--stop-after-steps " << o_.stop_after_steps << ": the checkpoint is already at step " << step_);
    if (o_.resume && main_rank_) drop_metrics_after(metrics_path_, step_);
    if (main_rank_) metrics_ = std::make_unique<JsonlWriter>(metrics_path_, o_.resume);
    auto max_cost = net_->cost(families::max_arch(space_));
    auto min_cost = net_->cost(families::min_arch(space_));
    std::ostringstream os;
    os << "supernet: max child " << max_cost.mflops() << " MFLOPs " << max_cost.params << " params, min child "
       << min_cost.mflops() << " MFLOPs " << min_cost.params << " params; " << total_ << " steps (" << t_.epochs
       << " epochs x " << spe_ << "), "
       << (fixed_ ? (init_.init_from.empty() ? "from scratch: " : "fine-tune: ") + families::arch_summary(*fixed_)
                  : t_.sampling == "uniform" ? std::string("uniform sampling, 1 child per step")
                                             : std::to_string(2 + t_.random_children) + " children per step");
    log_info(os.str());
  }

  void start_workers() {
    workers_ = make_step_workers(o_.workers, t_.batch_size, device_, group_ != nullptr);
    // The workers compute; this thread only adds their gradients and steps the optimizer, on one
    // thread: an OpenMP team of its own would spin after each of those small kernels, on the cores
    // the workers need (a one-off trial: 1.05x; docs/PERFORMANCE.md).
    if (workers_->workers() > 1) main_threads_.emplace(1);
    progress_.emplace("train", total_, "step", 10.0, step_);
    sum_.world_size = world_;
    sum_.total_steps = total_;
    sum_.checkpoint = ckpt_;
    window_.start = now_seconds();
    // validate_every_epochs: an epoch's validation runs at the start of the next one, or after the
    // last step, so that a run stopped at an epoch's end validates that epoch when it resumes,
    // unless metrics.jsonl already holds its line.
    validated_epochs_ = step_ / spe_;
    if (o_.resume && t_.validate_every_epochs > 0 && step_ > 0 && step_ % spe_ == 0) {
      bool missing = main_rank_ && !has_validation_line(metrics_path_, step_ / spe_);
      if (group_) missing = group_->any(missing, "the validation check");
      if (missing) --validated_epochs_;
    }
  }

  // Every rank evaluates (none waits on another's evaluation); rank 0 writes the line.
  void validate(int64_t epochs_done) {
    if (t_.validate_every_epochs == 0 || epochs_done <= validated_epochs_ || epochs_done % t_.validate_every_epochs != 0)
      return;
    main_threads_.reset();  // every thread for the evaluation
    spec::json m;
    bool interrupted = false;
    try {
      m = validate_children(net_, t_, d_, fixed_, device_);
    } catch (const Interrupted&) {
      interrupted = true;
    }
    if (workers_->workers() > 1) main_threads_.emplace(1);
    if (group_ ? group_->any(interrupted, "the interrupt check") : interrupted) stop_interrupted();
    validated_epochs_ = epochs_done;
    window_.start += m["validation_s"].get<double>();  // the window's images/s: training time only
    m["step"] = step_;
    m["epochs_done"] = epochs_done;
    m["elapsed_s"] = elapsed();
    log_info(validation_summary(m, epochs_done));
    if (metrics_) metrics_->write_line(m.dump());
  }

  // Importance sorting permutes the weights; the momentum no longer matches them, so it restarts
  // (once-for-all builds a new optimizer at each of its phases for the same reason).
  void sort_channels_if_due(int64_t epoch, int64_t start_batch) {
    if (fixed_ || t_.sort_channels_every_epochs <= 0 || epoch == 0 || epoch % t_.sort_channels_every_epochs != 0 ||
        start_batch != 0)
      return;
    if (!net_->sort_channels()) return;  // the family has no channels to sort
    opt_->state().clear();
    log_info("epoch " + std::to_string(epoch) + ": middle channels sorted by importance");
  }

  // Returns false when --stop-after-steps stops the run.
  bool train_epoch(int64_t epoch) {
    validate(epoch);
    data::LoaderOptions lo = epoch_loader_options(t_, epoch, device_);
    lo.start_batch = step_ - epoch * spe_;
    lo.shard = dist::rank();
    lo.shards = world_;
    sort_channels_if_due(epoch, lo.start_batch);
    data::BatchLoader loader(d_.train_set, d_.split.train, lo);
    while (auto batch = loader.next()) {
      const double lr = lr_at(t_, step_, total_, spe_);
      set_lr(*opt_, lr);
      StepLosses l = sandwich_step(net_, *opt_, *batch, t_, step_, device_, fixed_, group_, workers_.get());
      check_losses(l);
      ++step_;
      record_step(l, lr, epoch, group_ ? t_.batch_size : batch->x.size(0));
      if (step_ % t_.checkpoint_every_steps == 0 && step_ < total_) save(false);
      // Every rank stops at the same step when any of them was told to (SIGTERM reaches them all
      // on a cluster, one by one).
      if (group_ ? group_->any(interrupt_requested(), "the interrupt check") : interrupt_requested()) stop_interrupted();
      if (o_.stop_after_steps > 0 && step_ >= o_.stop_after_steps) return false;
    }
    return true;
  }

  // A non-finite loss: the step was skipped (on_nonfinite_loss: skip), up to max_skipped_steps in a
  // row; otherwise training has diverged.
  void check_losses(const StepLosses& l) {
    if (!l.skipped) {
      skipped_in_a_row_ = 0;
      NAS_CHECK(std::isfinite(l.max) && std::isfinite(l.min) && std::isfinite(l.random), Error,
                "training diverged at step " << step_ << " (loss max " << l.max << ", min " << l.min
                                             << "); the last good checkpoint is " << ckpt_
                                             << " (on_nonfinite_loss: skip would skip such steps)");
      return;
    }
    ++sum_.skipped_steps;
    ++skipped_in_a_row_;
    log_warn("step " + std::to_string(step_) + ": loss max " + std::to_string(l.max) + ", min " +
             std::to_string(l.min) + ": not finite, step skipped (" + std::to_string(skipped_in_a_row_) +
             " in a row)");
    NAS_CHECK(skipped_in_a_row_ < t_.max_skipped_steps, Error,
              "training diverged: " << skipped_in_a_row_ << " steps in a row with a non-finite loss (max_skipped_steps), "
                                    << "the last at step " << step_ << "; the last good checkpoint is " << ckpt_);
  }

  // The step's losses and timings: the summary, the metrics line of every log_every_steps, progress.
  void record_step(const StepLosses& l, double lr, int64_t epoch, int64_t images) {
    ++window_.steps;
    if (!l.skipped) sum_.last = l;  // the summary reports the last finite losses
    sum_.allreduce_s += l.allreduce_s;
    window_.allreduce_s += l.allreduce_s;
    window_.images += images;
    if (step_ % t_.log_every_steps == 0 || step_ == total_) write_metrics_line(l, lr, epoch);
    char extra[96];
    std::snprintf(extra, sizeof extra, "loss max %.3f min %.3f lr %.4f", l.max, l.min, lr);
    progress_->update(step_, extra);
  }

  void write_metrics_line(const StepLosses& l, double lr, int64_t epoch) {
    const double now = now_seconds();
    const double ips = window_.images / std::max(1e-9, now - window_.start);
    spec::json m = {{"step", step_},         {"epoch", epoch},         {"lr", lr},
                    {"loss_max", l.max},     {"loss_min", l.min},      {"loss_random", l.random},
                    {"images_per_s", ips},   {"elapsed_s", elapsed()}};
    if (sum_.skipped_steps > 0) m["skipped_steps"] = sum_.skipped_steps;
    if (group_) {
      m["world_size"] = world_;
      m["allreduce_s_per_step"] = window_.allreduce_s / static_cast<double>(std::max<int64_t>(1, window_.steps));
    }
    if (metrics_) metrics_->write_line(m.dump());
    window_ = Window{now, 0, 0, 0};
  }

  // The trained arch as a standalone child, BN statistics recalibrated exactly as nas-slice does
  // (a short run's moving averages are still close to their initial values).
  void save_trained_child() {
    eval::recalibrate_bn(net_, d_.train_set, calibration_indices(t_, d_.split), norm_, t_.calib_batch_size, device_);
    net_->to(torch::kCPU);
    families::ChildNet child = net_->slice(*fixed_);
    supernet::CheckpointMeta cm = meta_;
    cm.created.clear();
    supernet::save_child(o_.out_dir + "/child.ckpt", child, cm);
    sum_.child = o_.out_dir + "/child.ckpt";
  }

  const spec::SearchSpace& space_;
  const spec::TrainSpec& t_;
  const TrainOptions& o_;
  const double t0_ = now_seconds();
  const torch::Device device_;
  const std::string ckpt_, metrics_path_;
  const data::Normalization norm_;
  dist::Group* const group_ = dist::world_size() > 1 ? dist::world() : nullptr;
  const bool main_rank_ = dist::is_main();
  const int world_ = dist::world_size();
  TrainData d_;
  supernet::Supernet net_{nullptr};
  const spec::Arch* fixed_ = nullptr;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  int64_t spe_ = 0, total_ = 0;  // steps per epoch, in all
  int64_t step_ = 0;
  double earlier_sittings_s_ = 0;  // training seconds before this sitting (resume)
  supernet::CheckpointMeta init_;  // a fine-tune's start: where its weights came from
  supernet::CheckpointMeta meta_;
  std::unique_ptr<JsonlWriter> metrics_;
  std::unique_ptr<WorkerPool> workers_;
  std::optional<ThreadsScope> main_threads_;
  std::optional<Progress> progress_;
  TrainSummary sum_;
  struct Window {  // since the last metrics line
    double start = 0;
    int64_t images = 0;
    double allreduce_s = 0;
    int64_t steps = 0;
  } window_;
  int64_t skipped_in_a_row_ = 0;
  int64_t validated_epochs_ = 0;
};
}  // namespace

TrainSummary train_supernet(const spec::SearchSpace& space, const spec::TrainSpec& t, const TrainOptions& o) {
  return SupernetRun(space, t, o).run();
}

}  // namespace nas::train
