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
#include "data/datasets.h"
#include "dist/dist.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "core/rng.h"
#include "eval/evaluate.h"
#include "nn/elastic.h"
#include "nn/precision.h"
#include "supernet/checkpoint.h"
#include "supernet/sampling.h"
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
WorkerPool make_step_workers(int requested, int64_t batch_rows, const torch::Device& device, bool distributed) {
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
  return WorkerPool(workers, kernel_threads);
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
  const std::vector<spec::Arch> children =
      step_children(net, t, step, fixed, batch_losses(net, x, y, group, cuda ? nullptr : workers));
  const std::vector<torch::Tensor> params = net->parameters();
  const int64_t rows = x.size(0);
  // The pool's workers, at most one per 2 rows (BN needs 2 values per shard).
  const int shards = workers != nullptr && !parallel && !cuda ? default_workers(workers->workers(), 0, rows) : 1;
  ShardGroup shard_group(shards);
  std::vector<ShardPass> passes(static_cast<size_t>(shards));
  // Shard w trains every child, in order, on rows [rows * w / shards, rows * (w + 1) / shards); its
  // losses are weighted by its share of the rows, and BN normalizes over all shards together.
  auto run_shard = [&](int w) {
    const int64_t first = rows * w / shards, n = rows * (w + 1) / shards - first;
    const torch::Tensor xs = shards == 1 ? x : x.narrow(0, first, n);
    const torch::Tensor ys = shards == 1 ? y : y.narrow(0, first, n);
    const double weight = share * static_cast<double>(n) / static_cast<double>(rows);
    ShardPass& pass = passes[static_cast<size_t>(w)];
    nn::GroupSum shard_sum;
    if (shards > 1) shard_sum = [&shard_group, w](const torch::Tensor& v) { return shard_group.sum(v, w); };
    BatchNormSyncScope shard_sync(std::move(shard_sum));
    nn::RunningStatsScope record(&pass.bn);
    std::optional<nn::RowNoiseScope> noise;
    if (!cuda) noise.emplace(mask_seed, first, rows);
    std::map<int, torch::Tensor> resized;  // one copy per resolution, shared by the children that use it
    torch::Tensor teacher;
    for (size_t i = 0; i < children.size(); ++i) {
      const spec::Arch& a = children[i];
      auto it = resized.find(a.resolution);
      if (it == resized.end()) it = resized.emplace(a.resolution, supernet::resize_input(xs, a.resolution)).first;
      // The first child learns from the labels, with dropout and drop-connect unless it is a uniform
      // sample, and teaches the others under the sandwich rule.
      const bool regularized = i == 0 && mode != "uniform";
      torch::Tensor logits;
      {
        nn::AutocastScope autocast(cuda);
        logits = net->forward_child(it->second, a, regularized ? t.dropout : 0.0, regularized ? t.drop_connect : 0.0)
                     .to(torch::kFloat);
      }
      torch::Tensor loss;
      if (i == 0) {
        loss = label_loss(logits, ys, t.label_smoothing) * weight;
        if (regularized && fault_nan_at(step)) loss = loss * std::numeric_limits<double>::quiet_NaN();
        if (mode == "sandwich")  // regression: the students regress on its output instead of its probabilities
          teacher = ys.is_floating_point() ? logits.detach().squeeze(1)
                                           : torch::softmax(logits.detach() / t.temperature, 1);
      } else {
        loss = student_loss(logits, ys, teacher, t) * weight;
      }
      accumulate(pass.grads, torch::autograd::grad({loss}, params, {}, /*retain_graph=*/false,
                                                   /*create_graph=*/false, /*allow_unused=*/true));
      pass.losses.push_back(loss.detach());
    }
  };
  std::vector<std::function<void()>> tasks;
  for (int w = 0; w < shards; ++w)
    tasks.emplace_back([&, w] {
      try {
        run_shard(w);
      } catch (...) {
        shard_group.abort(std::current_exception());  // the other shards stop waiting for this one
        throw;
      }
    });
  if (shards > 1)
    workers->run(tasks);
  else
    tasks[0]();
  // Gradients: the shards' sums added in shard order. A parameter that no child of this step used
  // (an op a cell space's single-path child did not sample) keeps an undefined gradient, and the
  // optimizer skips it, with no weight decay and no stale momentum.
  std::vector<torch::Tensor> grads;
  for (auto& p : passes) accumulate(grads, p.grads);
  for (size_t k = 0; k < params.size(); ++k) params[k].mutable_grad() = grads[k];
  std::vector<torch::Tensor> losses;
  for (size_t i = 0; i < children.size(); ++i) {
    torch::Tensor l = passes[0].losses[i];
    for (size_t w = 1; w < passes.size(); ++w) l = l + passes[w].losses[i];
    losses.push_back(l);
  }
  StepLosses out;
  torch::Tensor all = torch::stack(losses);
  if (parallel) {
    out.allreduce_s = dist::average_gradients(*group, params, group->bucket_bytes());
    std::vector<torch::Tensor> l{all.to(torch::kDouble).contiguous()};
    group->allreduce_sum(l, "the loss all-reduce");
    all = l[0] / group->size();
  }
  all = all.to(torch::kCPU, torch::kDouble);
  if (t.on_nonfinite_loss == "skip" && !torch::isfinite(all).all().item<bool>()) {
    out.skipped = true;  // no update: the gradients dropped, the BN statistics never applied
  } else {
    passes[0].bn.apply();  // every shard normalized with the same (group) statistics: shard 0's suffice
    if (t.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, t.grad_clip);
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
    children = {{"val_acc_max", supernet::max_arch(net->space())}, {"val_acc_min", supernet::min_arch(net->space())}};
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

TrainSummary train_supernet(const spec::SearchSpace& space, const spec::TrainSpec& t, const TrainOptions& o) {
  const double t0 = now_seconds();
  torch::Device device(o.device);
  const std::string ckpt = o.out_dir + "/supernet.ckpt";
  NAS_CHECK(t.sampling != "fixed" || o.fixed_arch, UsageError,
            t.source << ": sandwich.sampling: fixed trains one arch: give it with --arch");
  fault_nan_steps();  // a malformed value fails before any work
  // Data first: a bad dataset or spec fails before anything is created on disk.
  TrainData d = load_train_data(t);
  NAS_CHECK(t.validate_every_epochs == 0 || !d.split.val.empty(), SpecError,
            t.source << ": validate_every_epochs: needs validation images (data.validation_images > 0)");
  // Data parallel over the processes of dist::world(): rank 0 writes every file.
  dist::Group* group = dist::world_size() > 1 ? dist::world() : nullptr;
  const bool main_rank = dist::is_main();
  const int world = dist::world_size();
  if (main_rank) {
    make_dirs(o.out_dir);
    check_output_path(ckpt);
  }

  const auto& set = d.train_set;
  log_info("data: " + std::to_string(d.split.train.size()) + " training, " + std::to_string(d.split.val.size()) +
           " validation images of " + std::to_string(set.h) + "x" + std::to_string(set.w) + "x" +
           std::to_string(set.c) + ", " + std::to_string(set.num_classes) + " classes");

  torch::manual_seed(t.seed);
  supernet::Supernet net(space, set.c, set.num_classes);
  net->init_last_bn_gamma(t.zero_init_last_bn);
  const spec::Arch* fixed = o.fixed_arch ? &*o.fixed_arch : nullptr;
  if (fixed) {
    spec::validate_arch(*fixed, space, "--arch");
    net->set_active(*fixed);
  }
  net->to(device);
  auto opt = make_optimizer(net, t);

  const int64_t spe = data::BatchLoader::batches_for(static_cast<int64_t>(d.split.train.size()), t.batch_size, true);
  const int64_t total = spe * t.epochs;
  NAS_CHECK(t.batch_size >= 2 * world, UsageError,
            t.source << ": batch_size: expected at least 2 images per process for batch norm (" << world
                     << " processes), found " << t.batch_size);
  int64_t step = 0;
  double earlier_sittings_s = 0;  // training seconds before this sitting (resume)
  auto elapsed = [&] { return earlier_sittings_s + now_seconds() - t0; };
  supernet::CheckpointMeta init;  // a fine-tune's start: where its weights came from
  if (!o.init_from.empty() && !o.resume) {
    init = initialize_from(o.init_from, space, d.train_set, net);
    init.init_from = o.init_from;
    init.init_digest = init.digest;
  }
  if (o.resume) {
    auto meta = supernet::restore_supernet(ckpt, net, opt.get());
    init.init_from = meta.init_from;  // a resumed fine-tune keeps its origin
    init.init_digest = meta.init_digest;
    step = meta.step;
    earlier_sittings_s = meta.elapsed_s;
    NAS_CHECK(meta.total_steps == total, UsageError,
              ckpt << ": cannot resume: the checkpoint plans " << meta.total_steps << " steps, this run " << total
                   << " (data or epochs changed)");
    log_info("resuming from " + ckpt + " at step " + std::to_string(step) + "/" + std::to_string(total));
  }
  if (group) {
    // Every rank must run the same recipe from the same state: the specs and the step compared,
    // then rank 0's weights and buffers copied to all (as DDP does at construction).
    spec::json fp = {{"train", spec::to_json(t)}, {"space", spec::to_json(space)}, {"step", step},
                     {"fixed", fixed ? spec::arch_hash(*fixed) : std::string()}};
    fp["train"]["data"].erase("path");  // may differ between machines (--data)
    group->check_same(spec::compact_dump(fp), "train spec, search space or checkpoint step");
    std::vector<torch::Tensor> state;
    for (auto& p : net->parameters()) state.push_back(p.detach());
    for (auto& b : net->buffers()) state.push_back(b);
    {
      torch::NoGradGuard ng;
      group->broadcast(state, 0, "the initial weight broadcast");
    }
    log_info("data parallel: " + std::to_string(world) + " processes (" + group->backend() + "), " +
             std::to_string(t.batch_size / world) + "-" + std::to_string((t.batch_size + world - 1) / world) +
             " images each of every batch of " + std::to_string(t.batch_size) +
             (t.sync_bn ? ", synchronized BN" : ", BN statistics per process"));
  }
  supernet::CheckpointMeta meta;
  meta.space = space;
  meta.train = t;
  meta.in_channels = set.c;
  meta.num_classes = set.num_classes;
  meta.image_size = set.h;
  meta.total_steps = total;
  if (fixed) meta.arch = *fixed;  // a from-scratch run of one arch, or a fine-tune
  meta.init_from = init.init_from;
  meta.init_digest = init.init_digest;

  auto save = [&](bool finished) {
    if (!main_rank) return;
    meta.step = step;
    meta.finished = finished;
    meta.elapsed_s = elapsed();
    meta.created.clear();
    supernet::save_supernet(ckpt, net, meta, opt.get());
  };
  auto stop_interrupted = [&] {
    save(false);
    if (group) group->barrier("the interrupt checkpoint");  // all exit once rank 0 has written it
    throw Interrupted("interrupted at step " + std::to_string(step) + "; checkpoint saved to " + ckpt +
                      (main_rank ? "" : " by rank 0") + " (continue with --resume)");
  };

  NAS_CHECK(o.stop_after_steps <= 0 || o.stop_after_steps > step, UsageError,
            "--stop-after-steps " << o.stop_after_steps << ": the checkpoint is already at step " << step);
  const std::string metrics_path = o.out_dir + "/metrics.jsonl";
  if (o.resume && main_rank) drop_metrics_after(metrics_path, step);
  std::unique_ptr<JsonlWriter> metrics;
  if (main_rank) metrics = std::make_unique<JsonlWriter>(metrics_path, o.resume);
  auto max_cost = net->cost(supernet::max_arch(space));
  auto min_cost = net->cost(supernet::min_arch(space));
  {
    std::ostringstream os;
    os << "supernet: max child " << max_cost.mflops() << " MFLOPs " << max_cost.params << " params, min child "
       << min_cost.mflops() << " MFLOPs " << min_cost.params << " params; " << total << " steps ("
       << t.epochs << " epochs x " << spe << "), "
       << (fixed ? (init.init_from.empty() ? "from scratch: " : "fine-tune: ") + spec::arch_summary(*fixed)
                 : t.sampling == "uniform" ? std::string("uniform sampling, 1 child per step")
                                           : std::to_string(2 + t.random_children) + " children per step");
    log_info(os.str());
  }
  WorkerPool workers = make_step_workers(o.workers, t.batch_size, device, group != nullptr);
  // The workers compute; this thread only adds their gradients and steps the optimizer, on one
  // thread: an OpenMP team of its own would spin after each of those small kernels, on the cores
  // the workers need (a one-off trial: 1.05x; docs/PERFORMANCE.md).
  std::optional<ThreadsScope> main_threads;
  if (workers.workers() > 1) main_threads.emplace(1);
  Progress progress("train", total, "step", 10.0, step);
  TrainSummary sum;
  sum.world_size = world;
  sum.total_steps = total;
  sum.checkpoint = ckpt;
  double window_start = now_seconds();
  int64_t window_images = 0;
  int64_t skipped_in_a_row = 0;
  double window_allreduce = 0;
  int64_t window_steps = 0;
  const data::Normalization norm = normalization_of(t);
  // validate_every_epochs: every rank evaluates (none waits on another's evaluation), rank 0 writes
  // the line. An epoch's validation runs at the start of the next one, or after the last step, so
  // that a run stopped at an epoch's end validates that epoch when it resumes, unless metrics.jsonl
  // already holds its line.
  int64_t validated_epochs = step / spe;
  if (o.resume && t.validate_every_epochs > 0 && step > 0 && step % spe == 0) {
    bool missing = main_rank && !has_validation_line(metrics_path, step / spe);
    if (group) missing = group->any(missing, "the validation check");
    if (missing) --validated_epochs;
  }
  auto validate = [&](int64_t epochs_done) {
    if (t.validate_every_epochs == 0 || epochs_done <= validated_epochs || epochs_done % t.validate_every_epochs != 0)
      return;
    main_threads.reset();  // every thread for the evaluation
    spec::json m;
    bool interrupted = false;
    try {
      m = validate_children(net, t, d, fixed, device);
    } catch (const Interrupted&) {
      interrupted = true;
    }
    if (workers.workers() > 1) main_threads.emplace(1);
    if (group ? group->any(interrupted, "the interrupt check") : interrupted) stop_interrupted();
    validated_epochs = epochs_done;
    window_start += m["validation_s"].get<double>();  // the window's images/s: training time only
    m["step"] = step;
    m["epochs_done"] = epochs_done;
    m["elapsed_s"] = elapsed();
    log_info(validation_summary(m, epochs_done));
    if (metrics) metrics->write_line(m.dump());
  };
  for (int64_t epoch = step / spe; epoch < t.epochs && step < total; ++epoch) {
    validate(epoch);
    data::LoaderOptions lo = epoch_loader_options(t, epoch, device);
    lo.start_batch = step - epoch * spe;
    lo.shard = dist::rank();
    lo.shards = world;
    if (!fixed && net->space().family == "mbconv" && t.sort_channels_every_epochs > 0 && epoch > 0 && epoch % t.sort_channels_every_epochs == 0 &&
        lo.start_batch == 0) {
      // Importance sorting permutes the weights; the momentum no longer matches them, so it
      // restarts (once-for-all builds a new optimizer at each of its phases for the same reason).
      net->sort_channels();
      opt->state().clear();
      log_info("epoch " + std::to_string(epoch) + ": middle channels sorted by importance");
    }
    data::BatchLoader loader(set, d.split.train, lo);
    while (auto batch = loader.next()) {
      double lr = lr_at(t, step, total, spe);
      set_lr(*opt, lr);
      StepLosses l = sandwich_step(net, *opt, *batch, t, step, device, fixed, group, &workers);
      if (l.skipped) {
        ++sum.skipped_steps;
        ++skipped_in_a_row;
        log_warn("step " + std::to_string(step) + ": loss max " + std::to_string(l.max) + ", min " +
                 std::to_string(l.min) + ": not finite, step skipped (" + std::to_string(skipped_in_a_row) +
                 " in a row)");
        NAS_CHECK(skipped_in_a_row < t.max_skipped_steps, Error,
                  "training diverged: " << skipped_in_a_row << " steps in a row with a non-finite loss (max_skipped_steps), "
                                        << "the last at step " << step << "; the last good checkpoint is " << ckpt);
      } else {
        skipped_in_a_row = 0;
        NAS_CHECK(std::isfinite(l.max) && std::isfinite(l.min) && std::isfinite(l.random), Error,
                  "training diverged at step " << step << " (loss max " << l.max << ", min " << l.min
                                               << "); the last good checkpoint is " << ckpt
                                               << " (on_nonfinite_loss: skip would skip such steps)");
      }
      ++step;
      ++window_steps;
      if (!l.skipped) sum.last = l;  // the summary reports the last finite losses
      sum.allreduce_s += l.allreduce_s;
      window_allreduce += l.allreduce_s;
      window_images += group ? t.batch_size : batch->x.size(0);
      if (step % t.log_every_steps == 0 || step == total) {
        double now = now_seconds();
        double ips = window_images / std::max(1e-9, now - window_start);
        spec::json m = {{"step", step},          {"epoch", epoch},        {"lr", lr},
                        {"loss_max", l.max},     {"loss_min", l.min},     {"loss_random", l.random},
                        {"images_per_s", ips},   {"elapsed_s", elapsed()}};
        if (sum.skipped_steps > 0) m["skipped_steps"] = sum.skipped_steps;
        if (group) {
          m["world_size"] = world;
          m["allreduce_s_per_step"] = window_allreduce / static_cast<double>(std::max<int64_t>(1, window_steps));
        }
        if (metrics) metrics->write_line(m.dump());
        window_start = now;
        window_images = 0;
        window_allreduce = 0;
        window_steps = 0;
      }
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss max %.3f min %.3f lr %.4f", l.max, l.min, lr);
      progress.update(step, extra);
      if (step % t.checkpoint_every_steps == 0 && step < total) save(false);
      // Every rank stops at the same step when any of them was told to (SIGTERM reaches them all
      // on a cluster, one by one).
      if (group ? group->any(interrupt_requested(), "the interrupt check") : interrupt_requested()) stop_interrupted();
      if (o.stop_after_steps > 0 && step >= o.stop_after_steps) break;
    }
    if (o.stop_after_steps > 0 && step >= o.stop_after_steps) break;
  }
  if (step % spe == 0) validate(step / spe);
  main_threads.reset();
  save(step >= total);
  progress.finish(step);
  if (fixed && step >= total && main_rank) {
    // The trained arch as a standalone child, BN statistics recalibrated exactly as nas-slice does
    // (a short run's moving averages are still close to their initial values).
    eval::recalibrate_bn(net, set, calibration_indices(t, d.split), norm, t.calib_batch_size, device);
    net->to(torch::kCPU);
    nn::ChildNet child = net->slice(*fixed);
    supernet::CheckpointMeta cm = meta;
    cm.created.clear();
    supernet::save_child(o.out_dir + "/child.ckpt", child, cm);
    sum.child = o.out_dir + "/child.ckpt";
  }
  if (group) group->barrier("the end of training");  // every rank returns after rank 0 has written
  sum.steps = step;
  sum.seconds = now_seconds() - t0;
  return sum;
}

}  // namespace nas::train
