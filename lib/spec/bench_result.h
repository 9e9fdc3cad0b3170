#pragma once
// nas.bench: what a model costs on the machine it ran on, with the context that changes the numbers.
#include <cstdint>
#include <string>

#include "spec/arch.h"
#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kBenchKind = "nas.bench";
inline constexpr int kBenchVersion = 1;

struct BenchContext {
  std::string host, cpu, device = "cpu", libtorch, toolchain, commit, date;
  int cpu_count = 0;
  int threads = 0;
  std::string precision = "fp32";  // fp32, or bf16 (autocast)
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
  int throughput_batch = 0;
  double images_per_s = 0;
  double peak_rss_mib = 0;
  int64_t test_images = 0;  // 0: accuracy not measured
  double test_acc = 0;
};

json to_json(const BenchResult& b);
BenchResult bench_result_from_json(const json& j, const std::string& file);
BenchResult load_bench_result(const std::string& path);

}  // namespace nas::spec
