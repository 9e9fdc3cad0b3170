#pragma once
// nas.train: data, optimization and sandwich-rule settings for nas-train-supernet.
#include <cstdint>
#include <string>
#include <vector>

#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kTrainKind = "nas.train";
inline constexpr int kTrainVersion = 1;

struct DataSpec {
  std::string format = "idx";
  std::string path = "/usr/share/datasets/fashion-mnist";
  int64_t validation_images = 5000;  // held out of the training split, seeded
  uint64_t split_seed = 0;
  int64_t train_limit = 0;  // 0: use every remaining training image
  std::vector<double> mean = {0.2860};
  std::vector<double> std = {0.3530};
  int crop_padding = 2;  // random crop with zero padding (0: off)
  bool hflip = true;
  int prefetch_batches = 4;
  // format csv: rows of numeric features and one label column (classification)
  std::string label;          // the label column: its header name, or "#k" (0-based index) without a header
  bool header = true;         // the first row (after skip_rows) names the columns
  int64_t skip_rows = 0;      // rows before the header or the data (e.g. sklearn's count line)
  double test_fraction = 0.2; // rows held out as the test set (seeded by split_seed)
  std::string task = "classification";  // or "regression": a numeric label, one output, MSE loss, R^2
};

struct TrainSpec {
  std::string source = "train spec";  // file it was read from (for messages; not serialized)
  DataSpec data;
  int epochs = 3;
  int batch_size = 128;
  // optimizer
  std::string optimizer = "sgd";  // sgd (Nesterov by default) or rmsprop
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = true;
  double rms_alpha = 0.9;  // RMSProp smoothing
  double rms_eps = 1e-3;
  double weight_decay = 3e-5;  // on conv/linear weights only, not BN or bias
  double grad_clip = 0.0;      // global L2 norm; 0: off
  // The learning rate used is lr * f(batch_size / reference_batch): f = 1 (none), the ratio
  // (linear, Goyal et al. 2017) or its square root (sqrt). batch_size is the global batch, whatever
  // the number of processes.
  std::string lr_scaling = "none";
  int reference_batch = 256;
  // schedule: linear warm-up, then cosine to final_lr_fraction * lr, or exponential decay
  // (decay_rate every decay_epochs) that holds at final_lr_fraction * lr (BigNAS), or constant
  std::string schedule = "cosine";
  double warmup_epochs = 0.3;
  double final_lr_fraction = 0.0;
  double decay_rate = 0.97;
  double decay_epochs = 2.4;
  // sandwich rule and inplace distillation; "uniform" trains one random child per step on labels
  // (the single-path baseline); "fixed" is set by from-scratch runs of one arch
  std::string sampling = "sandwich";
  int random_children = 2;
  // How each random child is drawn (issue 19): "uniform" over every decision; "flops-stratified": a
  // FLOPs bin first (flops_bins equal bins between the min and the max child), then a child in it;
  // "best-pareto" / "worst-pareto" (AttentiveNAS): `candidates` uniform draws, the one of lowest /
  // highest loss on the step's batch kept (train/sampling_policy.h).
  std::string child_policy = "uniform";
  int candidates = 3;
  int flops_bins = 8;
  bool distillation = true;
  std::string distill_loss = "soft_ce";  // or kl (same gradients, different reported values)
  double temperature = 1.0;
  double label_smoothing = 0.1;  // max child (and children trained on labels)
  double dropout = 0.1;          // before the classifier, max child only
  double drop_connect = 0.0;     // stochastic depth of residual blocks, max child only
  bool zero_init_last_bn = true; // last BN gamma of each residual block starts at zero
  int sort_channels_every_epochs = 0;  // sort middle channels by importance every N epochs (0: off)
  // Every N epochs (0: never), the validation accuracy of the max and min child (of the one arch when
  // training one), BN recalibrated as for a sliced child, goes to metrics.jsonl: the training curves.
  int validate_every_epochs = 0;
  // Data-parallel runs: BN statistics over every process's share of the batch (as one process
  // would compute them), instead of each process's own share.
  bool sync_bn = false;
  // A NaN or infinite loss: "stop" (exit 1, the last good checkpoint kept) or "skip" the step
  // (no update; BN running statistics restored), stopping after max_skipped_steps in a row.
  std::string on_nonfinite_loss = "stop";
  int64_t max_skipped_steps = 10;
  uint64_t seed = 0;
  int64_t checkpoint_every_steps = 500;
  int64_t log_every_steps = 20;
  // BN recalibration used by search and slice (defaults for them)
  int64_t calib_images = 2000;
  int calib_batch_size = 250;
};

// The peak learning rate after the lr_scaling rule.
double scaled_lr(const TrainSpec& t);

TrainSpec train_spec_from_json(const json& j, const std::string& file);
TrainSpec load_train_spec(const std::string& path);
json to_json(const TrainSpec& t);

}  // namespace nas::spec
