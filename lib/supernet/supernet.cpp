#include "supernet/supernet.h"

#include "core/error.h"
#include "families/sampling.h"

namespace nas::supernet {

SupernetImpl::SupernetImpl(const spec::SearchSpace& s, int in_channels, int num_classes)
    : space_(s), in_channels_(in_channels), num_classes_(num_classes) {
  NAS_CHECK(in_channels > 0 && num_classes >= 1, SpecError,
            "supernet: expected at least 1 input channel and 1 output (a regression target, or 2 classes), found "
                << in_channels << " and " << num_classes);
  modules_ = families::torch_of(s).supernet(*this, s, in_channels, num_classes);
  active_ = families::max_arch(s);
}

void SupernetImpl::init_last_bn_gamma(bool zero) { modules_->init_last_bn_gamma(zero); }

bool SupernetImpl::sort_channels() { return modules_->sort_channels(); }

void SupernetImpl::set_active(const spec::Arch& arch) {
  families::validate_arch(arch, space_, "arch");
  active_ = arch;
}

torch::Tensor SupernetImpl::forward(const torch::Tensor& x) { return forward_child(x, active_); }

torch::Tensor SupernetImpl::forward_child(const torch::Tensor& x, const spec::Arch& arch, double dropout,
                                          double drop_connect) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == in_channels_, "supernet: expected input [N, ", in_channels_,
              ", R, R], got ", x.sizes());
  return modules_->forward(x, arch, dropout, drop_connect, is_training());
}

torch::Tensor SupernetImpl::forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                                         const torch::Tensor& reduce_weights) {
  torch::Tensor y = modules_->forward_mixed(x, normal_weights, reduce_weights);
  NAS_CHECK(y.defined(), UsageError,
            "the continuous relaxation needs a cell space; \"" << space_.name << "\" is family " << space_.family);
  return y;
}

families::ChildNet SupernetImpl::slice(const spec::Arch& arch) {
  families::validate_arch(arch, space_, "arch");
  families::ChildNet child(space_, arch, in_channels_, num_classes_);
  torch::NoGradGuard no_grad;
  modules_->slice(arch, *child, *this);
  return child;
}

torch::Tensor resize_input(const torch::Tensor& x, int r) {
  if (x.size(2) == r && x.size(3) == r) return x;
  namespace F = torch::nn::functional;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{r, r})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

}  // namespace nas::supernet
