#pragma once
// Timing a forward pass: warm-up, then repetitions until the median is known well enough (or a
// time cap), with order statistics and the median's confidence interval. Torch-free.
#include <functional>
#include <vector>

namespace nas::eval {

struct LatencyStats {
  int warmup = 0;
  int reps = 0;
  double min_ms = 0, median_ms = 0, p90_ms = 0, mean_ms = 0, stdev_ms = 0;
  // Distribution-free 95% confidence interval of the median (order statistics at n/2 -+ 0.98 sqrt(n)).
  double ci_low_ms = 0, ci_high_ms = 0;
  bool noisy = false;   // the cap (time or repetitions) came before the interval met the target
  double seconds = 0;   // timed seconds
};

struct TimingOptions {
  int warmup = 10;          // untimed runs
  int min_reps = 10;        // timed runs at least
  double ci = 0.02;         // stop when the median's 95% interval is within +-ci of it; 0: after min_reps
  double min_seconds = 0;   // and time for at least this long
  double max_seconds = 10;  // the cap: stop here (noisy when the interval is still too wide)
  int max_reps = 1000000;
  std::function<void()> sync;  // called after each run before the clock stops (device synchronisation)
};

LatencyStats measure(const std::function<void()>& fn, const TimingOptions& o);

// Order statistics of samples in milliseconds (quantile by linear interpolation), with the median's
// 95% confidence interval.
LatencyStats summarize(std::vector<double> ms);
// The median of `v` (the mean of the two middle values when their number is even; 0 when empty).
double median(std::vector<double> v);

// Whether the median's interval of `s` is within +-rel of the median (never with fewer than 6
// samples: [min, max] then covers the median less than 95% of the time).
bool within(const LatencyStats& s, double rel);

}  // namespace nas::eval
