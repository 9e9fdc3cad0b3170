#pragma once
// Sandwich-rule supernet training with inplace distillation (DESIGN.md §4).
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>

#include "data/loader.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/supernet.h"
#include "train/sampling_policy.h"
#include "train/workers.h"

namespace nas::dist {
class Group;
}

namespace nas::train {

struct StepLosses {
  double max = 0;     // max child, on labels (label smoothing)
  double min = 0;     // min child, on the max child's soft predictions (or labels without distillation)
  double random = 0;  // mean over the random children
  double allreduce_s = 0;  // data parallel: seconds in the gradient all-reduce
  bool skipped = false;    // a loss was NaN or infinite and on_nonfinite_loss is skip: no update
};

// One optimizer step on one batch, by t.sampling:
// - sandwich: max child on true labels, its detached soft predictions teach the min and
//   `random_children` random children (sampled from (seed, step, child index)); gradients summed;
// - uniform: one random child on labels (the single-path baseline);
// - fixed: the child `fixed` on labels (from-scratch training of one arch).
// Dropout and drop-connect apply to the max (or fixed) child only.
// Data parallel (`group` set): `batch` is this rank's share of the global batch of t.batch_size;
// each loss is weighted by the share's size, the gradients are averaged over the ranks in buckets
// after every child's backward (one all-reduce per bucket per step), BN statistics are synchronized
// when t.sync_bn, and the losses returned are the global batch's on every rank.
// Workers (`workers` with more than one, one process, CPU): W shard workers each train every child
// on rows [B·w/W, B·(w+1)/W) of the batch, BN synchronized over the shards, dropout masks drawn for
// the whole batch (nn::RowNoiseScope); the gradients are summed in shard order and the BN
// statistics applied after the passes, so that the step equals one worker's to float rounding, and
// is the same bit for bit at a given worker count (resume).
StepLosses sandwich_step(supernet::Supernet& net, torch::optim::Optimizer& opt, const data::Batch& batch,
                         const spec::TrainSpec& t, int64_t step, const torch::Device& device = torch::kCPU,
                         const spec::Arch* fixed = nullptr, dist::Group* group = nullptr,
                         WorkerPool* workers = nullptr);

// The losses of best-/worst-pareto's candidates (train/sampling_policy.h) on a batch: label
// cross-entropy without smoothing, no gradient, BN normalizing with the batch's statistics and
// leaving the running ones alone; one candidate per task on `workers`; over the ranks of `group`,
// the mean of the ranks' losses, so that every rank keeps the same candidates.
CandidateLosses batch_losses(supernet::Supernet& net, const torch::Tensor& x, const torch::Tensor& y,
                             dist::Group* group = nullptr, WorkerPool* workers = nullptr);

// Learning rate at `step`: linear warm-up, then cosine decay to final_lr_fraction * lr, or
// exponential decay (decay_rate per decay_epochs) held at final_lr_fraction * lr, or constant.
double lr_at(const spec::TrainSpec& t, int64_t step, int64_t total_steps, int64_t steps_per_epoch);

// SGD (Nesterov) or RMSProp, with weight decay on conv/linear weights only (not BN or biases).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(supernet::Supernet& net, const spec::TrainSpec& t);
void set_lr(torch::optim::Optimizer& opt, double lr);

struct TrainOptions {
  std::string out_dir;          // supernet.ckpt and metrics.jsonl go here
  bool resume = false;          // continue from out_dir/supernet.ckpt
  int64_t stop_after_steps = 0; // stop (and checkpoint) after this many steps in total; 0: run to the end
  std::string device = "cpu";
  // From-scratch mode: train this one arch (sampling "fixed"); also writes out_dir/child.ckpt.
  std::optional<spec::Arch> fixed_arch;
  // Shards of every batch trained at once on this many worker threads, the process's LibTorch
  // threads shared among them (0: default_workers). One process, CPU only.
  int workers = 0;
  // Fine-tune: the supernet checkpoint (same search space) whose weights the run starts from,
  // instead of a fresh initialization; its optimizer state is not taken. Ignored on resume.
  std::string init_from;
  // Data parallel over dist::world() when it is set (see sandwich_step).
};

struct TrainSummary {
  int64_t steps = 0;
  int64_t total_steps = 0;
  double seconds = 0;
  std::string checkpoint;
  std::string child;  // from-scratch runs: the trained arch as a child checkpoint
  StepLosses last;
  int world_size = 1;
  double allreduce_s = 0;  // data parallel: seconds in gradient all-reduces, all steps
  int64_t skipped_steps = 0;  // steps with a non-finite loss, skipped (on_nonfinite_loss: skip)
};

// Trains (or resumes) and writes checkpoints; throws Interrupted after saving on SIGINT/SIGTERM.
TrainSummary train_supernet(const spec::SearchSpace& space, const spec::TrainSpec& t, const TrainOptions& o);

// Loads the training data of a train spec (images in `dir`) and splits it.
// The label loss: cross-entropy (with label smoothing) for class indices; mean squared error for
// float targets (regression, one output).
torch::Tensor label_loss(const torch::Tensor& logits, const torch::Tensor& y, double label_smoothing = 0);

struct TrainData {
  data::ImageSet train_set;
  data::Split split;
};
TrainData load_train_data(const spec::TrainSpec& t);
data::Normalization normalization_of(const spec::TrainSpec& t);
// Short from-scratch training of one arch, in memory (no files), for the lower-fidelity and
// learning-curve estimators: the recipe of `t` minus the sandwich, on a seeded subset of the
// training split, optionally at another input resolution; the validation accuracy is measured
// after every epoch.
struct CurveOptions {
  int epochs = 1;
  int64_t train_images = 0;  // 0: the whole training split
  int resolution = 0;        // 0: the arch's own
  std::string device = "cpu";
  int eval_batch = 64;  // see eval::default_eval_batch
  // Called after each epoch with (epochs done, validation accuracy); returning false stops.
  std::function<bool(int, double)> after_epoch;
};
std::vector<double> train_arch_curve(const spec::SearchSpace& space, const spec::TrainSpec& t, const TrainData& d,
                                     const spec::Arch& arch, const std::vector<int64_t>& val, const CurveOptions& o);

// The fixed, seeded subset of training images used for BN recalibration (calib_images of them).
std::vector<int64_t> calibration_indices(const spec::TrainSpec& t, const data::Split& split, int64_t count = -1);

}  // namespace nas::train
