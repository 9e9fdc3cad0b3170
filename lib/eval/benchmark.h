#pragma once
// Timing a forward pass: warm-up, repetitions, order statistics.
#include <functional>
#include <vector>

namespace nas::eval {

struct LatencyStats {
  int warmup = 0;
  int reps = 0;
  double min_ms = 0, median_ms = 0, p90_ms = 0, mean_ms = 0, stdev_ms = 0;
};

// Runs fn() `warmup` times untimed, then `reps` times timed (at least `min_seconds` in total when
// given, up to max_reps). `sync` (may be empty) is called after each run before the clock stops
// (device synchronisation).
LatencyStats measure_latency(const std::function<void()>& fn, int warmup, int reps, double min_seconds = 0,
                             int max_reps = 100000, const std::function<void()>& sync = {});

// Order statistics of samples in milliseconds (quantile by linear interpolation).
LatencyStats summarize(std::vector<double> ms);

}  // namespace nas::eval
