#include <torch/torch.h>

#include <sstream>

#include "app/app_data.h"
#include "app/apps.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/io.h"
#include "core/log.h"
#include "eval/benchmark.h"
#include "eval/evaluate.h"
#include "nn/precision.h"
#include "spec/bench_result.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

namespace nas::app {

const cli::ToolInfo kBenchTool{
    "nas-benchmark",
    "Measure what a model costs on this machine: latency (warm-up, repetitions, median and p90),\n"
    "throughput, params, MFLOPs, peak resident memory and test accuracy. Takes a child checkpoint\n"
    "(--model) or a supernet plus an arch (--supernet --arch). Writes nas.bench JSON.",
    "nas-benchmark --model runs/fmnist/child.ckpt --threads 1 --batch 1 --out runs/fmnist/bench.json"};

void add_bench_options(CLI::App& app, BenchOptions& o) {
  auto* model = app.add_option("--model", o.model, "Child checkpoint (from nas-slice)");
  auto* sup = app.add_option("--supernet", o.supernet, "Supernet checkpoint (with --arch)");
  auto* arch = app.add_option("--arch", o.arch, "max, min, a nas.arch or a nas.search file (with --supernet)");
  model->excludes(sup)->excludes(arch);
  sup->needs(arch);
  arch->needs(sup);
  app.add_option("--out", o.out, "nas.bench JSON output ('-' for stdout)")->default_val("-");
  app.add_option("--data", o.data, "Dataset directory (default: the one the model was trained on)");
  app.add_option("--batch", o.batch, "Batch size for latency")->check(CLI::Range(1, 65536))->default_val(1);
  app.add_option("--warmup", o.warmup, "Untimed warm-up runs")->check(CLI::Range(0, 1000000))->default_val(10);
  app.add_option("--reps", o.reps, "Timed runs (at least)")->check(CLI::Range(1, 1000000))->default_val(50);
  app.add_option("--min-time", o.min_time, "Keep timing for at least this many seconds")
      ->check(CLI::Range(0.0, 3600.0))
      ->default_val(0.5);
  app.add_option("--throughput-batch", o.throughput_batch, "Batch size for throughput")
      ->check(CLI::Range(1, 65536))
      ->default_val(64);
  app.add_option("--test-images", o.test_images, "Test images for accuracy (-1: all, 0: skip)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40))
      ->default_val(-1);
  app.add_option("--calib-images", o.calib_images, "BN calibration images with --supernet (default: the spec's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cli::add_common_options(app, o.common);
}

void run_bench(const BenchOptions& o) {
  cli::apply_common_options(o.common);
  NAS_CHECK(!o.model.empty() || !o.supernet.empty(), UsageError, "give --model, or --supernet with --arch");
  if (o.out != "-") check_output_path(o.out);
  const torch::Device device(o.common.device);
  spec::BenchResult b;
  supernet::CheckpointMeta meta;
  eval::ForwardFn fwd;
  torch::nn::Module* module = nullptr;
  nn::ChildNet child{nullptr};
  supernet::Supernet net{nullptr};
  if (!o.model.empty()) {
    auto lc = supernet::load_child(o.model);
    meta = lc.meta;
    child = lc.net;
    b.source = "child";
    b.model_path = o.model;
    fwd = [&](const torch::Tensor& x) { return child->forward(x); };
    module = child.get();
  } else {
    auto ls = supernet::load_supernet(o.supernet);
    meta = ls.meta;
    net = ls.net;
    spec::Arch arch = resolve_arch(o.arch, meta.space);
    meta.arch = arch;
    net->set_active(arch);
    auto d = load_checkpoint_data(meta.train, o.data, o.calib_images, meta.in_channels, meta.num_classes);
    net->to(device);
    eval::recalibrate_bn(net, d.train, d.calib, d.norm, meta.train.calib_batch_size, device);
    b.source = "supernet";
    b.model_path = o.supernet;
    fwd = [&](const torch::Tensor& x) { return net->forward(x); };
    module = net.get();
  }
  const spec::Arch& arch = *meta.arch;
  auto cost = supernet::arch_cost(meta.space, arch, meta.in_channels, meta.num_classes);
  b.arch = arch;
  b.hash = spec::arch_hash(arch);
  b.mflops = cost.mflops();
  b.params = cost.params;
  module->to(device);
  module->eval();
  int threads = o.common.threads > 0 ? o.common.threads : cpu_count();
  {
    torch::NoGradGuard g;
    torch::manual_seed(o.common.seed);
    // On a GPU the clock stops after the device has finished (kernels run asynchronously).
    std::function<void()> sync;
    if (device.is_cuda()) sync = [] { torch::cuda::synchronize(); };
    auto run = [&](const torch::Tensor& in) {
      nn::AutocastScope autocast(device.is_cuda());
      fwd(in);
    };
    torch::Tensor x = torch::randn({o.batch, meta.in_channels, arch.resolution, arch.resolution}).to(device);
    auto lat = eval::measure_latency([&] { run(x); }, o.warmup, o.reps, o.min_time, std::max(o.reps, 100000), sync);
    b.batch = o.batch;
    b.warmup = lat.warmup;
    b.reps = lat.reps;
    b.min_ms = lat.min_ms;
    b.median_ms = lat.median_ms;
    b.p90_ms = lat.p90_ms;
    b.mean_ms = lat.mean_ms;
    b.stdev_ms = lat.stdev_ms;
    torch::Tensor xt =
        torch::randn({o.throughput_batch, meta.in_channels, arch.resolution, arch.resolution}).to(device);
    auto thr = eval::measure_latency([&] { run(xt); }, 3, 10, o.min_time, 100000, sync);
    b.throughput_batch = o.throughput_batch;
    b.images_per_s = o.throughput_batch / (thr.median_ms / 1e3);
  }
  if (o.test_images != 0) {
    std::string dir = o.data.empty() ? meta.train.data.path : o.data;
    auto test = load_test_set(dir, meta.in_channels, meta.num_classes);
    auto idx = data::iota_indices(test.n, o.test_images > 0 ? o.test_images : 0);
    auto r = eval::evaluate(*module, fwd, test, idx, arch.resolution, train::normalization_of(meta.train), 500, device);
    b.test_images = r.n;
    b.test_acc = r.acc;
  }
  b.peak_rss_mib = peak_rss_mib();
  auto& c = b.context;
  c.host = host_name();
  c.cpu = cpu_model();
  c.cpu_count = cpu_count();
  c.threads = threads;
  c.device = o.common.device;
  c.precision = o.common.precision;
  c.libtorch = TORCH_VERSION;
  c.toolchain = toolchain_version();
  c.commit = build_commit();
  c.date = utc_now_iso();
  char line[256];
  std::snprintf(line, sizeof line, "%s: %.3f MFLOPs, %lld params, median %.3f ms (p90 %.3f) at batch %d, %.0f img/s%s",
                b.hash.c_str(), b.mflops, static_cast<long long>(b.params), b.median_ms, b.p90_ms, b.batch,
                b.images_per_s,
                b.test_images > 0 ? (", test acc " + std::to_string(b.test_acc)).c_str() : "");
  log_info(line);
  write_output(o.out, spec::canonical_dump(spec::to_json(b)));
}

}  // namespace nas::app
