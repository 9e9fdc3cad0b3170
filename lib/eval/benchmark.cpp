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
  const size_t n = ms.size();
  auto q = [&](double p) {
    double pos = p * static_cast<double>(n - 1);
    size_t i = static_cast<size_t>(pos);
    double f = pos - static_cast<double>(i);
    return i + 1 < n ? ms[i] * (1 - f) + ms[i + 1] * f : ms[i];
  };
  s.reps = static_cast<int>(n);
  s.min_ms = ms.front();
  s.median_ms = q(0.5);
  s.p90_ms = q(0.9);
  // The ranks (1-based) j = floor(n/2 - 0.98 sqrt(n)) and k = ceil(1 + n/2 + 0.98 sqrt(n)) bound
  // the median with about 95% confidence whatever the distribution (binomial, normal approximation).
  const double half = 0.98 * std::sqrt(static_cast<double>(n));
  auto rank = [&](double r) { return ms[static_cast<size_t>(std::min<double>(static_cast<double>(n), std::max(1.0, r))) - 1]; };
  s.ci_low_ms = rank(std::floor(n / 2.0 - half));
  s.ci_high_ms = rank(std::ceil(1 + n / 2.0 + half));
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean_ms = sum / static_cast<double>(n);
  double var = 0;
  for (double v : ms) var += (v - s.mean_ms) * (v - s.mean_ms);
  s.stdev_ms = n > 1 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0;
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

bool within(const LatencyStats& s, double rel) {
  // Below 6 samples [min, max] covers the median less than 95% of the time: never precise enough.
  if (s.reps < 6) return false;
  return s.median_ms - s.ci_low_ms <= rel * s.median_ms && s.ci_high_ms - s.median_ms <= rel * s.median_ms;
}

LatencyStats measure(const std::function<void()>& fn, const TimingOptions& o) {
  auto check_interrupt = [] {
    if (interrupt_requested()) throw Interrupted("interrupted while timing");
  };
  for (int i = 0; i < o.warmup; ++i) {
    check_interrupt();
    fn();
  }
  if (o.sync) o.sync();
  std::vector<double> ms;
  const double start = now_seconds();
  size_t next_check = static_cast<size_t>(std::max(1, o.min_reps));
  bool stable = false;
  while (true) {
    check_interrupt();
    double t0 = now_seconds();
    fn();
    if (o.sync) o.sync();
    double t1 = now_seconds();
    ms.push_back((t1 - t0) * 1e3);
    const double elapsed = t1 - start;
    if (ms.size() >= next_check && elapsed >= o.min_seconds) {
      // Sorting costs n log n: check at geometrically spaced counts.
      next_check = ms.size() + std::max<size_t>(1, ms.size() / 10);
      stable = o.ci <= 0 || within(summarize(ms), o.ci);
      if (stable) break;
    }
    if (elapsed >= o.max_seconds || static_cast<int>(ms.size()) >= o.max_reps) break;
  }
  LatencyStats s = summarize(ms);
  s.warmup = o.warmup;
  s.seconds = now_seconds() - start;
  s.noisy = o.ci > 0 && !within(s, o.ci);
  return s;
}

}  // namespace nas::eval
