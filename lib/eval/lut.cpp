#include "eval/lut.h"

#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/build_info.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rng.h"
#include "families/modules.h"
#include "families/sampling.h"
#include "nn/elastic.h"
#include "nn/precision.h"

namespace nas::eval {
namespace {
// One operator as its family's runnable module and input (TorchFamily::timed_op), in eval mode on
// `device`.
families::TimedOp op_on_device(const spec::SearchSpace& s, const supernet::LatencyOp& op, int batch,
                               torch::Device device) {
  families::TimedOp r = families::torch_of(s).timed_op(op, batch);
  r.holder->eval();
  r.holder->to(device);
  r.input = r.input.to(device);
  return r;
}

TimingOptions with_sync(TimingOptions t, torch::Device device) {
  if (device.is_cuda()) t.sync = [] { torch::cuda::synchronize(); };
  return t;
}
}  // namespace

spec::BenchContext machine_context(int threads, const std::string& device, const std::string& precision) {
  spec::BenchContext c;
  c.host = host_name();
  c.cpu = cpu_model();
  c.cpu_count = cpu_count();
  c.threads = threads > 0 ? threads : torch::get_num_threads();
  c.device = device;
  c.precision = precision;
  c.libtorch = TORCH_VERSION;
  c.toolchain = toolchain_version();
  c.commit = build_commit();
  c.date = utc_now_iso();
  c.allocator = allocator_setting();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    // As ranges: "0-1", "0,2-3".
    std::ostringstream os;
    for (int i = 0; i < CPU_SETSIZE; ++i) {
      if (!CPU_ISSET(i, &set)) continue;
      int j = i;
      while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, &set)) ++j;
      os << (os.tellp() > 0 ? "," : "") << i;
      if (j > i) os << "-" << j;
      i = j;
    }
    c.cpu_affinity = os.str();
  }
  std::ifstream gov("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  std::getline(gov, c.governor);
  double load[1];
  if (getloadavg(load, 1) == 1) c.load_avg = load[0];
  return c;
}

int pin_cpus(const std::string& list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::stringstream ss(list);
  std::string part;
  int count = 0;
  auto bad = [&] {
    throw UsageError("--pin-cpus " + list + ": expected CPU numbers and ranges below " + std::to_string(CPU_SETSIZE) +
                     ", e.g. 0-1 or 0,2");
  };
  while (std::getline(ss, part, ',')) {
    size_t dash = part.find('-');
    int a = 0, b = 0;
    try {
      size_t used = 0;
      a = std::stoi(part.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? part.size() : dash)) bad();
      b = a;
      if (dash != std::string::npos) {
        b = std::stoi(part.substr(dash + 1), &used);
        if (used != part.size() - dash - 1) bad();
      }
    } catch (const std::logic_error&) {
      bad();
    }
    if (a < 0 || b < a || b >= CPU_SETSIZE) bad();
    for (int i = a; i <= b; ++i, ++count) CPU_SET(i, &set);
  }
  if (count == 0) bad();
  NAS_CHECK(sched_setaffinity(0, sizeof set, &set) == 0, UsageError,
            "--pin-cpus " << list << ": the kernel refused it (CPUs missing or not allowed here)");
  return CPU_COUNT(&set);
}

LatencyStats measure_child(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes,
                           const LutOptions& o) {
  torch::NoGradGuard g;
  families::ChildNet child(s, a, in_channels, num_classes);
  child->eval();
  child->to(o.device);
  torch::Tensor x = torch::randn({o.batch, in_channels, a.resolution, a.resolution}).to(o.device);
  return measure(
      [&] {
        nn::AutocastScope autocast(o.device.is_cuda());  // --precision's setting
        child->forward(x);
      },
      with_sync(o.timing, o.device));
}

std::vector<double> ChildRounds::medians() const {
  std::vector<double> m;
  for (const auto& rounds : ms) m.push_back(median(rounds));
  return m;
}

ChildRounds measure_children(const spec::SearchSpace& s, const std::vector<spec::Arch>& children, int in_channels,
                             int num_classes, const LutOptions& o, const std::function<void()>& tick) {
  ChildRounds r;
  r.ms.resize(children.size());
  for (int round = 0; round < std::max(1, o.rounds); ++round)
    for (size_t i = 0; i < children.size(); ++i) {
      const LatencyStats st = measure_child(s, children[i], in_channels, num_classes, o);
      r.ms[i].push_back(st.median_ms);
      r.noisy += st.noisy;
      if (tick) tick();
    }
  return r;
}

supernet::LatencyTable build_latency_table(const spec::SearchSpace& s, int in_channels, int num_classes,
                                           const LutOptions& o, const spec::BenchContext& context,
                                           const std::function<void(int64_t, int64_t)>& progress) {
  const double t0 = now_seconds();
  torch::NoGradGuard g;
  torch::manual_seed(o.seed);
  supernet::LatencyTable t;
  t.space = s.name;
  t.space_hash = supernet::space_hash(s);
  t.in_channels = in_channels;
  t.num_classes = num_classes;
  t.batch = o.batch;
  t.context = context;
  auto ops = supernet::space_ops(s, in_channels, num_classes);
  const int rounds = std::max(1, o.rounds);
  // The children: the max, the min and random ones calibrate the overhead; model_archs more fit
  // the learned correction.
  Rng rng(mix_seed(o.seed, 0x1a7));
  std::vector<spec::Arch> children = {families::max_arch(s), families::min_arch(s)};
  for (int i = 0; i < o.calibration_archs; ++i) children.push_back(families::random_arch(s, rng));
  const size_t n_calib = children.size();
  if (o.model_archs > 0)
    for (int i = 0; i < o.model_archs; ++i) children.push_back(families::random_arch(s, rng));
  const int64_t total = static_cast<int64_t>(ops.size() + children.size()) * rounds;
  int64_t done = 0;
  const TimingOptions timing = with_sync(o.timing, o.device);
  // One operator's module and input at a time (all of them at batch 64 would not fit), rebuilt in
  // each round from the same seed, so that every round times the same weights.
  // Round after round over everything, not round after round of one item: the VM this was written
  // on has slow spells of several seconds (1.5x) that would otherwise bias whole groups of items.
  std::vector<std::vector<LatencyStats>> op_stats(ops.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < ops.size(); ++i) {
      torch::manual_seed(mix_seed(o.seed, i));
      families::TimedOp runner = op_on_device(s, ops[i], o.batch, o.device);
      op_stats[i].push_back(measure(
          [&] {
            nn::AutocastScope autocast(o.device.is_cuda());  // --precision's setting
            runner.forward(runner.input);
          },
          timing));
      if (progress) progress(++done, total);
    }
  for (size_t i = 0; i < ops.size(); ++i) {
    auto& st = op_stats[i];
    std::sort(st.begin(), st.end(), [](const LatencyStats& a, const LatencyStats& b) { return a.median_ms < b.median_ms; });
    // The median over the rounds, as for the children below; p90 and reps of the middle round.
    const LatencyStats& mid = st[st.size() / 2];
    std::vector<double> medians;
    bool noisy = true;  // noisy only when every round was
    for (const auto& x : st) medians.push_back(x.median_ms), noisy = noisy && x.noisy;
    t.ops[ops[i].key] = {median(medians), mid.p90_ms, mid.reps, noisy};
  }
  const std::vector<double> measured =
      measure_children(s, children, in_channels, num_classes, o, [&] {
        if (progress) progress(++done, total);
      }).medians();
  std::vector<double> sums;
  for (size_t i = 0; i < n_calib; ++i) sums.push_back(t.sum_ms(s, children[i]));
  double overhead = 0;
  for (size_t i = 0; i < n_calib; ++i) overhead += measured[i] - sums[i];
  t.overhead_ms = overhead / static_cast<double>(n_calib);
  t.calibration_archs = static_cast<int>(n_calib);
  double ape = 0;
  for (size_t i = 0; i < n_calib; ++i) ape += std::abs(sums[i] + t.overhead_ms - measured[i]) / measured[i];
  t.calibration_mape = ape / static_cast<double>(n_calib);
  t.rounds = rounds;
  if (o.model_archs > 0) {
    // The learned correction: fitted on all the children, the calibration ones included.
    std::vector<std::vector<double>> x;
    for (const auto& a : children) x.push_back(supernet::latency_features(t, s, a, "the table"));
    t.model = supernet::fit_latency_model(supernet::latency_feature_names(s), x, measured);
  }
  t.build_seconds = now_seconds() - t0;
  return t;
}

}  // namespace nas::eval
