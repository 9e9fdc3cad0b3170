#pragma once
// Performance estimators over a trained supernet.
#include <torch/torch.h>

#include <limits>
#include <memory>

#include "data/idx.h"
#include "data/loader.h"
#include "search/search.h"
#include "supernet/supernet.h"
#include "train/trainer.h"

namespace nas::search {

// Inherited supernet weights: recalibrate the child's BN statistics on a fixed, seeded subset of
// training images, then measure top-1 accuracy on (a subset of) the validation split of `set`
// (shared: the estimator keeps it alive).
class InheritedEstimator : public Estimator {
 public:
  InheritedEstimator(supernet::Supernet net, std::shared_ptr<const data::ImageSet> set, std::vector<int64_t> calib_idx,
                     std::vector<int64_t> val_idx, data::Normalization norm, int calib_batch, int eval_batch,
                     torch::Device device = torch::kCPU);
  std::string name() const override { return "inherited_bn_recal"; }
  Score score(const spec::Arch& arch) override;

 private:
  supernet::Supernet net_;
  std::shared_ptr<const data::ImageSet> set_;
  std::vector<int64_t> calib_, val_;
  data::Normalization norm_;
  int calib_batch_, eval_batch_;
  torch::Device device_;
};

// Lower fidelity: trains the child from scratch for a few epochs, on a subset of the training split
// and/or at a lower resolution (train::train_arch_curve), and takes its final validation accuracy.
// The training data is shared: the estimator keeps it alive.
class LowFidelityEstimator : public Estimator {
 public:
  LowFidelityEstimator(const spec::SearchSpace& space, const spec::TrainSpec& t, std::shared_ptr<const train::TrainData> d,
                       std::vector<int64_t> val, train::CurveOptions o);
  std::string name() const override { return "low_fidelity"; }
  Score score(const spec::Arch& arch) override;
  Score score_at(const spec::Arch& arch, int epochs) override;

 protected:
  spec::SearchSpace space_;
  spec::TrainSpec t_;
  std::shared_ptr<const train::TrainData> d_;
  std::vector<int64_t> val_;
  train::CurveOptions o_;
};

// Learning-curve extrapolation: trains like LowFidelityEstimator for up to o.epochs, and after
// `observe` epochs fits acc(e) = a - b * e^(-c) to the curve so far (c on a grid, a and b by least
// squares). A child whose extrapolated final accuracy is below the best final accuracy seen minus
// `margin` is stopped there and scored by the extrapolation (Score::detail says so); the others
// train to the end and are scored by their measured accuracy.
inline constexpr double kCurveMargin = 0.005;  // the default margin
class CurveEstimator : public LowFidelityEstimator {
 public:
  CurveEstimator(const spec::SearchSpace& space, const spec::TrainSpec& t, std::shared_ptr<const train::TrainData> d,
                 std::vector<int64_t> val, train::CurveOptions o, int observe, double margin = kCurveMargin);
  std::string name() const override { return "learning_curve"; }
  Score score(const spec::Arch& arch) override;
  void replayed(const spec::Arch& arch, const Score& s) override;
  bool order_free() const override { return false; }  // early stopping compares with the best so far
  int64_t stopped_early() const { return stopped_; }

 private:
  int observe_;
  double margin_;
  double best_final_ = -std::numeric_limits<double>::infinity();  // -inf: no finished child yet
  int64_t stopped_ = 0;
};

// Fits acc(e) = a - b * e^(-c) to curve[i] at e = i + 1 and returns its value at `epochs`, in [0, 1].
double extrapolate_curve(const std::vector<double>& curve, int epochs);

}  // namespace nas::search
