#pragma once
// nas.bench: what a model costs on the machine it ran on, with the context that changes the numbers.
#include <cstdint>
#include <string>
#include <vector>

#include "spec/arch.h"
#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kBenchKind = "nas.bench";
inline constexpr int kBenchVersion = 1;

// Everything on the machine that changes a latency figure.
struct BenchContext {
  std::string host, cpu, device = "cpu", libtorch, toolchain, commit, date;
  int cpu_count = 0;
  int threads = 0;
  std::string precision = "fp32";  // fp32, or bf16 (autocast)
  std::string cpu_affinity;        // the CPUs the process may run on, e.g. "0-1" ("" in older files)
  std::string governor;            // cpufreq scaling governor of CPU 0 ("" when the kernel has none)
  double load_avg = -1;            // 1-minute load average when the measurement started (-1: unknown)
  std::string allocator;           // allocator_setting(): "glibc-tuned", "glibc" (--system-malloc); "" in older files
};
json to_json(const BenchContext& c);
BenchContext bench_context_from(Obj& c);
// What differs between the context a figure was measured in and `here`, as "field: X there, Y
// here" lines, over the fields that change latency (cpu, cpu_count, threads, device, precision,
// libtorch, cpu_affinity, allocator); empty when none.
std::vector<std::string> context_differences(const BenchContext& there, const BenchContext& here);

// Throughput at one batch size.
struct Throughput {
  int batch = 0;
  double images_per_s = 0;
};

struct BenchResult {
  BenchContext context;
  std::string source;  // "child" or "supernet"
  std::string model_path;
  Arch arch;
  std::string hash;
  double mflops = 0;
  int64_t params = 0;
  // latency at `batch`
  int batch = 1;
  int warmup = 0;
  int reps = 0;
  double min_ms = 0, median_ms = 0, p90_ms = 0, mean_ms = 0, stdev_ms = 0;
  double ci_low_ms = 0, ci_high_ms = 0;  // 95% confidence interval of the median
  bool noisy = false;                   // the time cap came before the interval was within the target
  double ci_target = 0;                 // the target half-width, relative (0.02: +-2%); 0: fixed repetitions
  int throughput_batch = 0;             // the largest of `throughput`
  double images_per_s = 0;
  std::vector<Throughput> throughput;
  double peak_rss_mib = 0;
  // Inference memory at `batch`: tensor memory measured at the peak of one forward pass (beyond the
  // weights and the input), and the analytic model's weights + peak activations (families/family.h).
  double activations_peak_mib = -1;  // -1: not measured
  double analytic_mib = -1;
  int64_t test_images = 0;  // 0: accuracy not measured
  double test_acc = 0;      // top-1, or R^2 for a regression model (then in r2 instead of top1)
  bool regression = false;
};

json to_json(const BenchResult& b);
// The model's arch is read by `read_arch` (families::bench_result_from_json passes the families').
BenchResult bench_result_from_json(const json& j, const std::string& file, const ArchReader& read_arch);
BenchResult load_bench_result(const std::string& path, const ArchReader& read_arch);

}  // namespace nas::spec
