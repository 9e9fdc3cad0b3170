#include "search/estimators.h"

#include "eval/evaluate.h"

namespace nas::search {

InheritedEstimator::InheritedEstimator(supernet::Supernet net, const data::ImageSet& set,
                                       std::vector<int64_t> calib_idx, std::vector<int64_t> val_idx,
                                       data::Normalization norm, int calib_batch, int eval_batch,
                                       torch::Device device)
    : net_(std::move(net)), set_(set), calib_(std::move(calib_idx)), val_(std::move(val_idx)),
      norm_(std::move(norm)), calib_batch_(calib_batch), eval_batch_(eval_batch), device_(device) {}

Score InheritedEstimator::score(const spec::Arch& arch) {
  net_->set_active(arch);
  eval::recalibrate_bn(net_, set_, calib_, norm_, calib_batch_, device_);
  auto r = eval::evaluate_supernet(net_, set_, val_, norm_, eval_batch_, device_);
  return Score{r.acc, r.loss};
}

}  // namespace nas::search
