#pragma once
// What the search benchmarks share: a surrogate estimator (an accuracy predictor fitted on real
// evaluations, as NAS-Bench-301 does), evaluations-to-target, medians and JSON lines.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <vector>

#include "search/predictor.h"
#include "search/search.h"

namespace nas::bench {

class SurrogateEstimator : public search::Estimator {
 public:
  SurrogateEstimator(const search::ArchEncoding& enc, const search::AccuracyPredictor& p) : enc_(enc), p_(p) {}
  std::string name() const override { return "surrogate"; }
  search::Score score(const spec::Arch& a) override {
    search::Score s;
    s.acc = p_.predict(enc_.encode(a));
    return s;
  }

 private:
  const search::ArchEncoding& enc_;
  const search::AccuracyPredictor& p_;
};

// Evaluations until the running best reaches `target` (budget + 1 when it never does).
inline int64_t evals_to_reach(const spec::SearchResult& r, double target) {
  int64_t n = 0;
  double best = -1;
  for (const auto& c : r.candidates) {
    if (!c.evaluated) continue;
    ++n;
    if (c.feasible) best = std::max(best, c.val_acc);
    if (best >= target) return n;
  }
  return r.budget + 1;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline void emit(const spec::json& j) { std::cout << j.dump() << std::endl; }

}  // namespace nas::bench
