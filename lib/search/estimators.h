#pragma once
// Performance estimators over a trained supernet.
#include <torch/torch.h>

#include "data/idx.h"
#include "data/loader.h"
#include "search/search.h"
#include "supernet/supernet.h"

namespace nas::search {

// Inherited supernet weights: recalibrate the child's BN statistics on a fixed, seeded subset of
// training images, then measure top-1 accuracy on (a subset of) the validation split.
class InheritedEstimator : public Estimator {
 public:
  InheritedEstimator(supernet::Supernet net, const data::ImageSet& set, std::vector<int64_t> calib_idx,
                     std::vector<int64_t> val_idx, data::Normalization norm, int calib_batch, int eval_batch,
                     torch::Device device = torch::kCPU);
  std::string name() const override { return "inherited_bn_recal"; }
  Score score(const spec::Arch& arch) override;

 private:
  supernet::Supernet net_;
  const data::ImageSet& set_;
  std::vector<int64_t> calib_, val_;
  data::Normalization norm_;
  int calib_batch_, eval_batch_;
  torch::Device device_;
};

}  // namespace nas::search
