#include "search/estimators.h"

#include "eval/evaluate.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace nas::search {

InheritedEstimator::InheritedEstimator(supernet::Supernet net, std::shared_ptr<const data::ImageSet> set,
                                       std::vector<int64_t> calib_idx, std::vector<int64_t> val_idx,
                                       data::Normalization norm, int calib_batch, int eval_batch,
                                       torch::Device device)
    : net_(std::move(net)), set_(std::move(set)), calib_(std::move(calib_idx)), val_(std::move(val_idx)),
      norm_(std::move(norm)), calib_batch_(calib_batch), eval_batch_(eval_batch), device_(device) {}

Score InheritedEstimator::score(const spec::Arch& arch) {
  net_->set_active(arch);
  eval::recalibrate_bn(net_, *set_, calib_, norm_, calib_batch_, device_);
  auto r = eval::evaluate_supernet(net_, *set_, val_, norm_, eval_batch_, device_);
  return Score{r.acc, r.loss, "", ""};
}

LowFidelityEstimator::LowFidelityEstimator(const spec::SearchSpace& space, const spec::TrainSpec& t,
                                           std::shared_ptr<const train::TrainData> d, std::vector<int64_t> val,
                                           train::CurveOptions o)
    : space_(space), t_(t), d_(std::move(d)), val_(std::move(val)), o_(std::move(o)) {}

Score LowFidelityEstimator::score(const spec::Arch& arch) { return score_at(arch, o_.epochs); }

Score LowFidelityEstimator::score_at(const spec::Arch& arch, int epochs) {
  train::CurveOptions o = o_;
  o.epochs = epochs;
  auto curve = train::train_arch_curve(space_, t_, *d_, arch, val_, o);
  Score s;
  s.acc = curve.back();
  char detail[96];
  std::snprintf(detail, sizeof detail, "%d epochs", static_cast<int>(curve.size()));
  s.detail = detail;
  return s;
}

double extrapolate_curve(const std::vector<double>& curve, int epochs) {
  const size_t n = curve.size();
  if (n == 0) return 0;
  if (n < 3) return curve.back();  // two points cannot choose a shape: no extrapolation
  double best_sse = 1e300, best_pred = curve.back();
  for (double c = 0.05; c <= 3.0001; c += 0.05) {
    // y = a - b * x with x = e^-c: linear least squares in (a, b).
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; ++i) {
      double x = std::pow(static_cast<double>(i + 1), -c), y = curve[i];
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    double den = static_cast<double>(n) * sxx - sx * sx;
    if (std::abs(den) < 1e-15) continue;
    double slope = (static_cast<double>(n) * sxy - sx * sy) / den;  // = -b
    double a = (sy - slope * sx) / static_cast<double>(n);
    double sse = 0;
    for (size_t i = 0; i < n; ++i) {
      double r = a + slope * std::pow(static_cast<double>(i + 1), -c) - curve[i];
      sse += r * r;
    }
    if (sse < best_sse) {
      best_sse = sse;
      best_pred = a + slope * std::pow(static_cast<double>(epochs), -c);
    }
  }
  return std::min(1.0, best_pred);  // accuracy or R^2: at most 1 (R^2 may be negative)
}

CurveEstimator::CurveEstimator(const spec::SearchSpace& space, const spec::TrainSpec& t,
                               std::shared_ptr<const train::TrainData> d, std::vector<int64_t> val, train::CurveOptions o,
                               int observe, double margin)
    : LowFidelityEstimator(space, t, std::move(d), std::move(val), std::move(o)), observe_(observe), margin_(margin) {
  NAS_CHECK(observe_ >= 3 && observe_ < o_.epochs, UsageError,
            "learning-curve estimator: expected 3 <= observed epochs < epochs, found " << observe_ << " of "
                                                                                     << o_.epochs);
}

void CurveEstimator::replayed(const spec::Arch&, const Score& s) {
  if (s.detail.rfind("stopped", 0) == 0)
    ++stopped_;
  else
    best_final_ = std::max(best_final_, s.acc);
}

Score CurveEstimator::score(const spec::Arch& arch) {
  train::CurveOptions o = o_;
  double predicted = -1;
  bool stopped = false;
  std::vector<double> seen;
  o.after_epoch = [&](int done, double acc) {
    seen.push_back(acc);
    if (done != observe_ || std::isinf(best_final_)) return true;  // no finished child yet
    predicted = extrapolate_curve(seen, o_.epochs);
    stopped = predicted < best_final_ - margin_;
    return !stopped;
  };
  auto curve = train::train_arch_curve(space_, t_, *d_, arch, val_, o);
  Score s;
  char detail[128];
  if (stopped) {
    ++stopped_;
    s.acc = predicted;
    std::snprintf(detail, sizeof detail, "stopped after %d of %d epochs; extrapolated", observe_, o_.epochs);
  } else {
    s.acc = curve.back();
    best_final_ = std::max(best_final_, s.acc);
    std::snprintf(detail, sizeof detail, "%d epochs", static_cast<int>(curve.size()));
  }
  s.detail = detail;
  return s;
}

}  // namespace nas::search
