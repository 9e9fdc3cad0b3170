#pragma once
// Building latency tables (nas.lut, supernet/latency_table.h) on this device: each operator of the
// space timed alone, as a standalone module with the child network's own layers and memory
// format; then a fixed overhead calibrated, and optionally a linear correction fitted, on sampled
// children measured end to end.
#include <torch/torch.h>

#include <functional>

#include "eval/benchmark.h"
#include "supernet/latency_table.h"

namespace nas::eval {

struct LutOptions {
  int batch = 1;
  TimingOptions timing;       // per operator and per child
  int calibration_archs = 20; // random children (plus the max and the min) for the overhead
  int model_archs = 0;        // random children for the learned correction (0: none)
  int rounds = 3;             // passes over all operators (then all children); each keeps its median
                              // over the passes, so a slow spell of the machine moves one pass only
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;  // on CUDA, autocast follows --precision
};

// This machine as a nas.bench / nas.lut context (CPU, cores, affinity, governor, load, LibTorch...).
spec::BenchContext machine_context(int threads, const std::string& device, const std::string& precision);

// Restricts this process to the CPUs in `list` ("0", "0-3", "0,2,4-5") and returns their number;
// UsageError naming --pin-cpus when the list is malformed or the kernel refuses it. Call before
// LibTorch starts its threads.
int pin_cpus(const std::string& list);

// Times one child end to end (random weights: latency does not depend on them), like the table's
// operators.
LatencyStats measure_child(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes,
                           const LutOptions& o);

// Children measured end to end in o.rounds passes, one pass over all of them after another (a
// slow spell of the machine then moves one pass of a group of children, not all of a child's
// rounds). `tick` (may be empty) is called after each measurement.
struct ChildRounds {
  std::vector<std::vector<double>> ms;  // [child][round]: each measurement's median
  int noisy = 0;                        // measurements that hit their time cap
  std::vector<double> medians() const;  // each child's median over its rounds
};
ChildRounds measure_children(const spec::SearchSpace& s, const std::vector<spec::Arch>& children, int in_channels,
                             int num_classes, const LutOptions& o, const std::function<void()>& tick = {});

// Builds the table for `s`; `context` describes this machine. `progress` (may be empty) is called
// after each operator and child with (done, total).
supernet::LatencyTable build_latency_table(const spec::SearchSpace& s, int in_channels, int num_classes,
                                           const LutOptions& o, const spec::BenchContext& context,
                                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace nas::eval
