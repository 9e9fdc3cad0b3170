#include "eval/benchmark.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"

namespace nas::eval {

LatencyStats summarize(std::vector<double> ms) {
  LatencyStats s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto q = [&](double p) {
    double pos = p * static_cast<double>(ms.size() - 1);
    size_t i = static_cast<size_t>(pos);
    double f = pos - static_cast<double>(i);
    return i + 1 < ms.size() ? ms[i] * (1 - f) + ms[i + 1] * f : ms[i];
  };
  s.reps = static_cast<int>(ms.size());
  s.min_ms = ms.front();
  s.median_ms = q(0.5);
  s.p90_ms = q(0.9);
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean_ms = sum / ms.size();
  double var = 0;
  for (double v : ms) var += (v - s.mean_ms) * (v - s.mean_ms);
  s.stdev_ms = ms.size() > 1 ? std::sqrt(var / (ms.size() - 1)) : 0.0;
  return s;
}

LatencyStats measure_latency(const std::function<void()>& fn, int warmup, int reps, double min_seconds, int max_reps,
                             const std::function<void()>& sync) {
  auto check_interrupt = [] {
    if (interrupt_requested()) throw Interrupted("interrupted while timing");
  };
  for (int i = 0; i < warmup; ++i) {
    check_interrupt();
    fn();
  }
  if (sync) sync();
  std::vector<double> ms;
  double start = now_seconds();
  while (static_cast<int>(ms.size()) < max_reps &&
         (static_cast<int>(ms.size()) < reps || now_seconds() - start < min_seconds)) {
    check_interrupt();
    double t0 = now_seconds();
    fn();
    if (sync) sync();
    ms.push_back((now_seconds() - t0) * 1e3);
  }
  LatencyStats s = summarize(ms);
  s.warmup = warmup;
  return s;
}

}  // namespace nas::eval
