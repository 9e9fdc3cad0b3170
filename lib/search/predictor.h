#pragma once
// A learned accuracy predictor: an ensemble of small MLPs on the one-hot encoding of a genotype
// (inactive decisions all zero), each trained on a bootstrap sample of the evaluated candidates.
// The ensemble mean is the prediction, its spread the uncertainty. fit() first holds out a fifth of
// the points to measure the predictor's own error (RMSE and Kendall tau on unseen children), then
// refits on all of them. Torch-free header; LibTorch inside.
#include <cstdint>
#include <memory>
#include <vector>

#include "search/encoding.h"
#include "search/search.h"
#include "spec/search_result.h"

namespace nas::search {

struct PredictorReport {
  int64_t points = 0;          // training points (all of them, after the validation round)
  int64_t val_points = 0;      // held out for the validation round (0: too few points to hold out)
  double val_rmse = 0;         // on the held-out points, in the scores' units
  double val_kendall_tau = 0;  // rank agreement on the held-out points
};

class AccuracyPredictor {
 public:
  AccuracyPredictor(const Encoding& enc, int members = 5, uint64_t seed = 0);
  ~AccuracyPredictor();
  AccuracyPredictor(const AccuracyPredictor&) = delete;
  AccuracyPredictor& operator=(const AccuracyPredictor&) = delete;

  // Needs at least 3 points (distinct genotypes). Deterministic for a given seed and thread count.
  PredictorReport fit(const std::vector<Genotype>& xs, const std::vector<double>& ys);
  bool fitted() const;
  double predict(const Genotype& g) const;      // ensemble mean
  // Ensemble means of many children in one batch (LibTorch's thread count; for screening large pools).
  std::vector<double> predict_many(const std::vector<Genotype>& gs) const;
  double uncertainty(const Genotype& g) const;  // ensemble standard deviation
  const PredictorReport& report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The predictor as an estimator on its own: learns from the evaluated candidates of earlier
// searches (nas.search files of the same space) and scores any child in microseconds.
class PredictorEstimator : public Estimator {
 public:
  // `files` (optional, one per result) name each result in errors; `what` otherwise.
  PredictorEstimator(const Encoding& enc, const std::vector<spec::SearchResult>& data, const std::string& what,
                     uint64_t seed, const std::vector<std::string>& files = {});
  std::string name() const override { return "predictor"; }
  Score score(const spec::Arch& arch) override;
  Score score_generic(const spec::json& child) override;
  const PredictorReport& report() const { return predictor_.report(); }

 private:
  Score predicted(const Genotype& g) const;
  const Encoding& enc_;
  AccuracyPredictor predictor_;
};


// Kendall tau-a of two equally long sequences (ties count as neither concordant nor discordant).
double kendall_tau(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace nas::search
