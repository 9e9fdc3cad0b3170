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
#include "eval/lut.h"
#include "eval/memory.h"
#include "families/documents.h"
#include "families/family.h"
#include "nn/precision.h"
#include "spec/bench_result.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

namespace nas::app {

const cli::ToolInfo kBenchmarkTool{
    "nas-benchmark",
    "Measure what a model costs on this machine: latency (warm-up, then repetitions until the median's\n"
    "95% confidence interval is within --ci, or --max-time; min, median, p90, stdev, a noisy flag),\n"
    "throughput at one or more batch sizes, params, MFLOPs, peak resident memory and test accuracy.\n"
    "Takes a child checkpoint (--model) or a supernet plus an arch (--supernet --arch). Writes nas.bench\n"
    "JSON. With --build-lut, times every operator a search space can produce instead and writes a\n"
    "latency table (nas.lut) for nas-search --latency-table.",
    "nas-benchmark --model runs/fmnist/child.ckpt --threads 1 --batch 1 --out runs/fmnist/bench.json\n"
    "  nas-benchmark --build-lut --space configs/spaces/fmnist-mbconv.yaml --threads 2 --out lut.json"};

BenchmarkToolOptions::BenchmarkToolOptions() {
  const eval::LutOptions lut;
  batch = lut.batch;
  warmup = lut.timing.warmup;
  reps = lut.timing.min_reps;
  ci = lut.timing.ci;
  max_time = lut.timing.max_seconds;
  lut_calib_archs = lut.calibration_archs;
  lut_model_archs = lut.model_archs;
  lut_rounds = lut.rounds;
}

void add_benchmark_tool_options(CLI::App& app, BenchmarkToolOptions& o) {
  auto* model = app.add_option("--model", o.model, "Child checkpoint (from nas-slice)");
  auto* sup = app.add_option("--supernet", o.supernet, "Supernet checkpoint (with --arch; or its space with --build-lut)");
  auto* arch = app.add_option("--arch", o.arch, "max, min, a nas.arch or a nas.search file (with --supernet)");
  model->excludes(sup)->excludes(arch);
  app.add_option("--out", o.out, "nas.bench (or nas.lut) JSON output ('-' for stdout)")->capture_default_str();
  app.add_option("--data", o.data, "Dataset directory (default: the one the model was trained on)");
  app.add_option("--batch", o.batch, "Batch size for latency")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed warm-up runs")->check(CLI::Range(0, 1000000))->capture_default_str();
  app.add_option("--reps", o.reps, "Timed runs at least")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--min-time", o.min_time, "Keep timing for at least this many seconds")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--ci", o.ci,
                 "Repeat until the median's 95% confidence interval is within +-this fraction of it (0: just --reps "
                 "and --min-time)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--max-time", o.max_time, "Cap on timed seconds per measurement; reaching it first marks it noisy")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_option("--pin-cpus", o.pin_cpus, "Run on these CPUs only, e.g. 0-1 or 0,2 (recorded in the context)");
  app.add_option("--throughput-batch", o.throughput_batches, "Batch sizes for throughput, e.g. 1,16,64")
      ->delimiter(',')
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--test-images", o.test_images, "Test images for accuracy (-1: all, 0: skip)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--calib-images", o.calib_images, "BN calibration images with --supernet (default: the spec's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_flag("--build-lut", o.build_lut,
               "Build a latency table: time every operator of --space (or of the --supernet's space) at --batch");
  app.add_option("--space", o.space, "--build-lut: the search space");
  app.add_option("--input-channels", o.input_channels, "--build-lut with --space: image channels")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--classes", o.classes, "--build-lut with --space: classes")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  app.add_option("--calib-archs", o.lut_calib_archs,
                 "--build-lut: random children (plus the max and the min) measured end to end to calibrate the overhead")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--model-archs", o.lut_model_archs,
                 "--build-lut: more random children measured to fit the learned latency model (0: none)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--rounds", o.lut_rounds,
                 "--build-lut: passes over all operators, then all children; each keeps its median over them "
                 "(a slow spell of the machine then moves one pass only)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--op-max-time", o.op_max_time, "--build-lut: cap on timed seconds per operator")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  cli::add_common_options(app, o.common);
}

namespace {
eval::TimingOptions timing_of(const BenchmarkToolOptions& o) {
  eval::TimingOptions t;
  t.warmup = o.warmup;
  t.min_reps = o.reps;
  t.ci = o.ci;
  t.min_seconds = o.min_time;
  t.max_seconds = std::max(o.max_time, o.min_time);
  return t;
}

void build_lut(const BenchmarkToolOptions& o) {
  NAS_CHECK(o.model.empty() && o.arch.empty(), UsageError, "--build-lut times a space: drop --model and --arch");
  NAS_CHECK(!o.space.empty() != !o.supernet.empty(), UsageError, "--build-lut: give one of --space and --supernet");
  spec::SearchSpace space;
  int in_ch = o.input_channels, classes = o.classes;
  if (!o.supernet.empty()) {
    auto meta = supernet::read_checkpoint_meta(o.supernet);
    space = meta.space;
    in_ch = meta.in_channels;
    classes = meta.num_classes;
  } else {
    space = families::load_search_space(o.space);
  }
  eval::LutOptions lo;
  lo.batch = o.batch;
  lo.timing = timing_of(o);
  lo.timing.min_seconds = 0;  // the interval decides, up to --op-max-time
  lo.timing.max_seconds = o.op_max_time;
  lo.calibration_archs = o.lut_calib_archs;
  lo.model_archs = o.lut_model_archs;
  lo.rounds = o.lut_rounds;
  lo.seed = o.common.seed;
  lo.device = torch::Device(o.common.device);
  auto ctx = eval::machine_context(o.common.threads, o.common.device, o.common.precision);
  const int64_t n_ops = static_cast<int64_t>(supernet::space_ops(space, in_ch, classes).size());
  const int64_t n_items = (n_ops + o.lut_calib_archs + 2 + o.lut_model_archs) * o.lut_rounds;
  log_info(space.name + ": " + std::to_string(n_ops) + " operators to time at batch " + std::to_string(o.batch) +
           ", then " + std::to_string(o.lut_calib_archs + 2 + o.lut_model_archs) + " children end to end, " +
           std::to_string(o.lut_rounds) + " rounds");
  Progress progress("lut", n_items, "item");
  auto t = eval::build_latency_table(space, in_ch, classes, lo, ctx,
                                     [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish(n_items);
  int noisy = 0;
  for (const auto& [k, v] : t.ops) noisy += v.noisy;
  char line[256];
  std::snprintf(line, sizeof line,
                "%zu operators (%d noisy), overhead %.4f ms, calibration MAPE %.1f%% on %d children%s, %.0f s",
                t.ops.size(), noisy, t.overhead_ms, 100 * t.calibration_mape, t.calibration_archs,
                t.model.empty() ? "" : (", model fit MAPE " + std::to_string(100 * t.model.fit_mape) + "%").c_str(),
                t.build_seconds);
  log_info(line);
  write_output(o.out, spec::canonical_dump(supernet::to_json(t)));
}
}  // namespace

namespace {
// What is benchmarked: a child checkpoint, or a supernet's child with its BN statistics recalibrated.
struct BenchedModel {
  supernet::CheckpointMeta meta;  // meta.arch: the child
  eval::ForwardFn forward;
  torch::nn::Module* module = nullptr;
  families::ChildNet child{nullptr};
  supernet::Supernet net{nullptr};
};

BenchedModel load_benched_model(const BenchmarkToolOptions& o, const torch::Device& device, spec::BenchResult& b) {
  BenchedModel m;
  if (!o.model.empty()) {
    auto lc = supernet::load_child(o.model);
    m.meta = lc.meta;
    m.child = lc.net;
    b.source = "child";
    b.model_path = o.model;
    m.forward = [child = m.child](const torch::Tensor& x) mutable { return child->forward(x); };
    m.module = m.child.get();
    return m;
  }
  auto ls = supernet::load_supernet(o.supernet);
  m.meta = ls.meta;
  m.net = ls.net;
  spec::Arch arch = resolve_arch(o.arch, m.meta.space);
  m.meta.arch = arch;
  m.net->set_active(arch);
  auto d = load_checkpoint_data(m.meta.train, o.data, o.calib_images, m.meta.in_channels, m.meta.num_classes,
                                m.meta.image_size);
  m.net->to(device);
  eval::recalibrate_bn(m.net, d.train, d.calib, d.norm, m.meta.train.calib_batch_size, device);
  b.source = "supernet";
  b.model_path = o.supernet;
  m.forward = [net = m.net](const torch::Tensor& x) mutable { return net->forward(x); };
  m.module = m.net.get();
  return m;
}

// Latency at --batch, peak activation memory, and throughput at each --throughput-batches.
void time_model(const BenchmarkToolOptions& o, const BenchedModel& m, const torch::Device& device,
                spec::BenchResult& b) {
  const spec::Arch& arch = *m.meta.arch;
  torch::NoGradGuard g;
  torch::manual_seed(o.common.seed);
  auto run = [&](const torch::Tensor& in) {
    nn::AutocastScope autocast(device.is_cuda());
    m.forward(in);
  };
  torch::Tensor x = torch::randn({o.batch, m.meta.in_channels, arch.resolution, arch.resolution}).to(device);
  eval::TimingOptions timing = timing_of(o);
  // On a GPU the clock stops after the device has finished (kernels run asynchronously).
  if (device.is_cuda()) timing.sync = [] { torch::cuda::synchronize(); };
  auto lat = eval::measure([&] { run(x); }, timing);
  b.batch = o.batch;
  b.warmup = lat.warmup;
  b.reps = lat.reps;
  b.min_ms = lat.min_ms;
  b.median_ms = lat.median_ms;
  b.p90_ms = lat.p90_ms;
  b.mean_ms = lat.mean_ms;
  b.stdev_ms = lat.stdev_ms;
  b.ci_low_ms = lat.ci_low_ms;
  b.ci_high_ms = lat.ci_high_ms;
  b.noisy = lat.noisy;
  b.ci_target = o.ci;
  if (lat.noisy)
    log_warn("latency: the median's 95% interval [" + std::to_string(lat.ci_low_ms) + ", " +
             std::to_string(lat.ci_high_ms) + "] ms is still wider than +-" + std::to_string(100 * o.ci) + "% after " +
             std::to_string(lat.reps) + " runs (--max-time): marked noisy");
  run(x);  // settled: first-call allocations are behind us
  b.activations_peak_mib = static_cast<double>(eval::measure_peak_memory([&] { run(x); }).peak_bytes) / (1 << 20);
  std::vector<int> batches = o.throughput_batches;
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  for (int tb : batches) {
    torch::Tensor xt = torch::randn({tb, m.meta.in_channels, arch.resolution, arch.resolution}).to(device);
    eval::TimingOptions tt = timing;
    tt.warmup = 3;
    auto thr = eval::measure([&] { run(xt); }, tt);
    b.throughput.push_back({tb, tb / (thr.median_ms / 1e3)});
  }
  b.throughput_batch = b.throughput.back().batch;
  b.images_per_s = b.throughput.back().images_per_s;
}

void log_benchmark(const spec::BenchResult& b) {
  char line[256];
  std::snprintf(line, sizeof line, "%s: %.3f MFLOPs, %lld params, median %.3f ms (p90 %.3f) at batch %d, %.0f img/s%s",
                b.hash.c_str(), b.mflops, static_cast<long long>(b.params), b.median_ms, b.p90_ms, b.batch,
                b.images_per_s,
                b.test_images > 0 ? ((b.regression ? ", test R^2 " : ", test acc ") + std::to_string(b.test_acc)).c_str() : "");
  log_info(line);
}
}  // namespace

void run_benchmark_tool(const BenchmarkToolOptions& opts) {
  BenchmarkToolOptions o = opts;
  if (!o.pin_cpus.empty()) {
    int n = eval::pin_cpus(o.pin_cpus);  // before LibTorch starts its threads
    if (o.common.threads == 0) o.common.threads = n;  // all cores: all the pinned ones, no more
  }
  cli::apply_common_options(o.common);
  if (o.out != "-") check_output_path(o.out);
  if (o.build_lut) return build_lut(o);
  NAS_CHECK(o.space.empty(), UsageError, "--space is for --build-lut; benchmark a --model or --supernet with --arch");
  NAS_CHECK(!o.model.empty() || !o.supernet.empty(), UsageError, "give --model, or --supernet with --arch");
  NAS_CHECK(o.supernet.empty() || !o.arch.empty(), UsageError, "--supernet needs --arch (max, min or a file)");
  const torch::Device device(o.common.device);
  spec::BenchResult b;
  const BenchedModel m = load_benched_model(o, device, b);
  const spec::Arch& arch = *m.meta.arch;
  auto cost = families::arch_cost(m.meta.space, arch, m.meta.in_channels, m.meta.num_classes);
  b.arch = arch;
  b.hash = spec::arch_hash(arch);
  b.mflops = cost.mflops();
  b.params = cost.params;
  b.analytic_mib = static_cast<double>(cost.params + o.batch * cost.peak_activations) * 4.0 / (1 << 20);
  m.module->to(device);
  m.module->eval();
  // The test set is read (and checked against the model) before the timing: bad data is refused
  // at once, not after minutes of measurements. Mapped or held, it is the same set either way.
  data::ImageSet test;
  if (o.test_images != 0)
    test = load_test_set(m.meta.train.data, o.data, m.meta.in_channels, m.meta.num_classes, m.meta.image_size);
  const int threads = torch::get_num_threads();  // as apply_common_options set it
  time_model(o, m, device, b);
  if (o.test_images != 0) {
    auto idx = data::iota_indices(test.n, o.test_images > 0 ? o.test_images : 0);
    auto r = eval::evaluate(*m.module, m.forward, test, idx, arch.resolution, train::normalization_of(m.meta.train),
                            eval::default_eval_batch(device), device);
    b.test_images = r.n;
    b.test_acc = r.acc;
    b.regression = test.regression();
  }
  b.peak_rss_mib = peak_rss_mib();
  b.context = eval::machine_context(threads, o.common.device, o.common.precision);
  log_benchmark(b);
  write_output(o.out, spec::canonical_dump(spec::to_json(b)));
}

}  // namespace nas::app
