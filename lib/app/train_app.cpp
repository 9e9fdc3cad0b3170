#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "app/app_data.h"
#include "app/apps.h"
#include "core/error.h"
#include "core/io.h"
#include "core/log.h"
#include "dist/dist.h"
#include "families/documents.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

namespace nas::app {

const cli::ToolInfo kTrainTool{
    "nas-train-supernet",
    "Train one weight-sharing supernet over a search space with the sandwich rule and inplace distillation.\n"
    "Writes OUT/supernet.ckpt (every checkpoint_every_steps and at the end, atomically) and OUT/metrics.jsonl.",
    "nas-train-supernet --space configs/spaces/fmnist-mbconv.yaml --train configs/train/fmnist.yaml --out runs/fmnist"};

TrainToolOptions::TrainToolOptions() {
  const train::TrainOptions lib;
  stop_after_steps = lib.stop_after_steps;
  workers = lib.workers;
}

void add_train_tool_options(CLI::App& app, TrainToolOptions& o) {
  app.add_option("--space", o.space, "Search space (nas.search_space YAML/JSON)");
  app.add_option("--train", o.train, "Training spec (nas.train YAML/JSON)");
  app.add_option("--out", o.out_dir, "Output directory")->capture_default_str();
  app.add_option("--data", o.data, "Dataset directory (overrides data.path)");
  app.add_option("--epochs", o.epochs, "Override epochs")->check(CLI::Range(1, 1000000));
  app.add_option("--batch-size", o.batch_size, "Override batch_size")->check(CLI::Range(1, 65536));
  app.add_option("--train-limit", o.train_limit, "Use at most N training images (overrides data.train_limit)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--validation-images", o.validation_images, "Override data.validation_images")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--arch", o.arch,
                 "From scratch: train this one arch (max, min, a nas.arch or nas.search file) instead of the "
                 "supernet; also writes OUT/child.ckpt");
  app.add_option("--init-from", o.init_from,
                 "Fine-tune: start --arch from the weights of this supernet checkpoint (its search space; "
                 "--space may be left out) instead of a fresh initialization; OUT/child.ckpt is the fine-tuned child")
      ->check(CLI::ExistingFile);
  app.add_flag("--resume", o.resume, "Continue from OUT/supernet.ckpt (its embedded specs are used)");
  app.add_option("--stop-after-steps", o.stop_after_steps, "Checkpoint and stop after N steps in total (0: never)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 60))
      ->capture_default_str();
  app.add_option("--workers", o.workers,
                 "Worker threads that train shards of every batch at once (BN synchronized over them), each on "
                 "its share of --threads (0: one per thread, at most 8 and one per 16 images; 1: the whole batch "
                 "on every thread). The result "
                 "does not depend on it, to float rounding")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  cli::add_common_options(app, o.common);
  cli::add_distributed_options(app, o.common);
}

void run_train_tool(const TrainToolOptions& o) {
  cli::apply_common_options(o.common);
  spec::SearchSpace space;
  spec::TrainSpec t;
  std::optional<spec::Arch> fixed;
  const std::string ckpt = o.out_dir + "/supernet.ckpt";
  if (o.resume) {
    // The checkpoint's embedded specs define the run; flags that would change it are refused
    // rather than silently ignored (only --data, for data that moved, is taken).
    NAS_CHECK(o.space.empty() && o.train.empty() && o.arch.empty() && o.init_from.empty() && o.epochs == 0 &&
                  o.batch_size == 0 && o.train_limit < 0 && o.validation_images < 0 && !o.common.seed_given,
              UsageError,
              "--resume continues the checkpoint's own run: drop --space, --train, --arch, --init-from, --epochs, "
              "--batch-size, --train-limit, --validation-images and --seed");
    auto meta = supernet::read_checkpoint_meta(ckpt);
    NAS_CHECK(meta.type == "supernet", CheckpointError, ckpt << ": expected a supernet checkpoint, found a " << meta.type);
    // A finished run of one arch whose child.ckpt is missing (stopped while writing it) resumes to
    // write it; any other finished run has nothing left to do.
    NAS_CHECK(!meta.finished || (meta.arch && !std::filesystem::exists(o.out_dir + "/child.ckpt")), UsageError,
              ckpt << ": training already finished (" << meta.step << " steps)");
    space = meta.space;
    t = meta.train;
    t.source = ckpt + " (embedded train spec)";
    fixed = meta.arch;
  } else {
    NAS_CHECK(!o.space.empty() || !o.init_from.empty(), UsageError, "--space is required (unless --resume or --init-from)");
    NAS_CHECK(!o.train.empty(), UsageError, "--train is required (unless --resume)");
    NAS_CHECK(o.init_from.empty() || !o.arch.empty(), UsageError,
              "--init-from fine-tunes one child: give it with --arch");
    space = o.space.empty() ? supernet::read_checkpoint_meta(o.init_from).space : families::load_search_space(o.space);
    t = spec::load_train_spec(o.train);
    if (!o.data.empty()) t.data.path = o.data;
    if (o.epochs > 0) t.epochs = o.epochs;
    if (o.batch_size > 0) t.batch_size = o.batch_size;
    if (o.train_limit >= 0) t.data.train_limit = o.train_limit;
    if (o.validation_images >= 0) t.data.validation_images = o.validation_images;
    if (o.common.seed_given) t.seed = o.common.seed;
    if (!o.arch.empty()) fixed = resolve_arch(o.arch, space);
  }
  if (o.resume && !o.data.empty()) t.data.path = o.data;  // the data may have moved
  train::TrainOptions to;
  to.out_dir = o.out_dir;
  to.resume = o.resume;
  to.stop_after_steps = o.stop_after_steps;
  to.device = o.common.device;
  to.fixed_arch = fixed;
  to.workers = o.workers;
  to.init_from = o.init_from;
  auto s = train::train_supernet(space, t, to);
  spec::json summary = {{"checkpoint", s.checkpoint}, {"steps", s.steps},          {"total_steps", s.total_steps},
                        {"seconds", s.seconds},       {"loss_max", s.last.max},   {"loss_min", s.last.min}};
  if (!s.child.empty()) summary["child"] = s.child;
  if (s.skipped_steps > 0) summary["skipped_steps"] = s.skipped_steps;
  if (s.world_size > 1) {
    summary["world_size"] = s.world_size;
    summary["allreduce_seconds"] = s.allreduce_s;
  }
  if (dist::is_main()) std::cout << spec::compact_dump(summary) << std::endl;
}

}  // namespace nas::app
