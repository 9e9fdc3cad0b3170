#include "families/modules.h"

#include "core/error.h"
#include "families/cell/modules.h"
#include "families/mbconv/modules.h"
#include "families/mlp/modules.h"
#include "families/resnet/modules.h"

namespace nas::families {

torch::Tensor SupernetModules::forward_mixed(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  return {};
}

TimedOp TorchFamily::timed_op(const LatencyOp& op, int) const {
  throw Error("family " + name() + " has no latency-table operator " + op.key);
}

const TorchFamily& torch_of(const spec::SearchSpace& s) {
  static const std::vector<const TorchFamily*> families = {&mbconv::torch_family(), &mlp::torch_family(),
                                                           &cell::torch_family(), &resnet::torch_family()};
  for (const TorchFamily* f : families)
    if (f->name() == s.family) return *f;
  throw Error("search space \"" + s.name + "\": family \"" + s.family + "\" has no modules");
}

std::string export_onnx(ChildNet& net) {
  torch::NoGradGuard no_grad;
  net->eval();
  return exporter::onnx_model(net->arch.space + "." + spec::arch_hash(net->arch), net->in_channels,
                              net->arch.resolution, net->num_classes,
                              [&](exporter::GraphBuilder& b) { net->export_onnx(b); });
}

ChildNetImpl::ChildNetImpl(const spec::SearchSpace& space, const spec::Arch& a, int in_ch, int classes)
    : arch(a), in_channels(in_ch), num_classes(classes) {
  modules_ = torch_of(space).child(*this, space, a, in_ch, classes);
}

}  // namespace nas::families
