#include "families/child.h"

#include "families/cell/cell.h"
#include "families/mbconv/mbconv.h"
#include "families/mlp/mlp.h"
#include "nn/shapes.h"

namespace nas::families {
torch::nn::Conv2d conv_no_bias(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).groups(groups).bias(false));
}

torch::Tensor stem_forward(torch::nn::Conv2d& conv, torch::nn::BatchNorm2d& bn, nn::Act act, const torch::Tensor& x) {
  torch::Tensor h = nn::to_channels_last(conv(x));
  h = bn(h);
  return nn::apply_act(h, act);
}

torch::Tensor head_forward(torch::nn::Conv2d& conv, torch::nn::BatchNorm2d& bn, nn::Act act, torch::nn::Linear& fc,
                           torch::Tensor h) {
  h = conv(h);
  h = bn(h);
  h = nn::apply_act(h, act);
  h = h.mean({2, 3});
  return fc(h);
}

ChildBlockImpl::ChildBlockImpl(const nn::MBConvOptions& o)
    : has_expand(o.has_expand()), se(o.se()), residual(o.residual()), act(o.act()) {
  const int64_t in = o.in(), out = o.out(), kernel = o.kernel(), stride = o.stride();
  int64_t mid = has_expand ? in * o.expand() : in;
  if (has_expand) {
    expand_conv = register_module("expand_conv", conv_no_bias(in, mid, 1, 1));
    expand_bn = register_module("expand_bn", torch::nn::BatchNorm2d(mid));
  }
  dw_conv = register_module("dw_conv", conv_no_bias(mid, mid, kernel, stride, mid));
  dw_bn = register_module("dw_bn", torch::nn::BatchNorm2d(mid));
  if (se) {
    int64_t red = nn::se_channels(static_cast<int>(mid));
    se_reduce = register_module("se_reduce", torch::nn::Linear(mid, red));
    se_expand = register_module("se_expand", torch::nn::Linear(red, mid));
  }
  project_conv = register_module("project_conv", conv_no_bias(mid, out, 1, 1));
  project_bn = register_module("project_bn", torch::nn::BatchNorm2d(out));
}

// One statement per layer: each intermediate is freed as soon as the next one exists, so that an
// inference holds at most a layer's input and output (plus a residual block's input), as
// families::arch_cost's peak_activations counts.
torch::Tensor ChildBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x;
  if (has_expand) {
    h = expand_conv(h);
    h = expand_bn(h);
    h = nn::apply_act(h, act);
  }
  h = dw_conv(h);
  h = dw_bn(h);
  h = nn::apply_act(h, act);
  if (se) h = nn::squeeze_excite(h, se_reduce->weight, se_reduce->bias, se_expand->weight, se_expand->bias);
  h = project_conv(h);
  h = project_bn(h);
  return residual ? h + x : h;
}

ChildNetImpl::ChildNetImpl(const spec::SearchSpace& s, const spec::Arch& a, int in_ch, int classes)
    : arch(a), in_channels(in_ch), num_classes(classes) {
  if (s.family == "cell") {
    const auto& c = cell::choices_of(a);
    cell_net = register_module("net", cell::CellNet(s, cell::chosen_ops(c.normal), cell::chosen_ops(c.reduce), in_ch,
                                                    classes, false));
    return;
  }
  if (s.family == "mlp") {
    int64_t in = int64_t{in_ch} * a.resolution * a.resolution;
    const auto& layers = mlp::choices_of(a).layers;
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t w = layers[i].width;
      const std::string p = "layer" + std::to_string(i);
      fc.push_back(register_module(p + "_fc", torch::nn::Linear(torch::nn::LinearOptions(in, w).bias(false))));
      fc_bn.push_back(register_module(p + "_bn", torch::nn::BatchNorm1d(w)));
      fc_act.push_back(nn::parse_act(layers[i].act));
      in = w;
    }
    classifier = register_module("classifier", torch::nn::Linear(in, classes));
    return;
  }
  const auto& ms = mbconv::space_of(s);
  const auto& ma = mbconv::choices_of(a);
  stem_act = nn::parse_act(ms.stem_act);
  head_act = nn::parse_act(ms.head_act);
  stem = register_module("stem", conv_no_bias(in_ch, ma.stem_width, ms.stem_kernel, ms.stem_stride));
  stem_bn = register_module("stem_bn", torch::nn::BatchNorm2d(ma.stem_width));
  int64_t ch = ma.stem_width;
  for (size_t i = 0; i < ma.stages.size(); ++i) {
    const auto& ss = ms.stages[i];
    const auto& sa = ma.stages[i];
    for (int b = 0; b < sa.depth; ++b) {
      auto blk = ChildBlock(nn::MBConvOptions(ch, sa.width)
                                .expand(sa.blocks[b].expand)
                                .kernel(sa.blocks[b].kernel)
                                .stride(b == 0 ? ss.stride : 1)
                                .has_expand(nn::has_expand(ss.expand))
                                .se(ss.se)
                                .act(nn::parse_act(ss.act))
                                .residual(b > 0));
      blocks.push_back(register_module("stage" + std::to_string(i) + "_block" + std::to_string(b), blk));
      ch = sa.width;
    }
  }
  head = register_module("head", conv_no_bias(ch, ma.head_width, 1, 1));
  head_bn = register_module("head_bn", torch::nn::BatchNorm2d(ma.head_width));
  classifier = register_module("classifier", torch::nn::Linear(ma.head_width, classes));
}

torch::Tensor ChildNetImpl::forward(const torch::Tensor& x) {
  if (cell_net) {
    const auto& c = cell::choices_of(arch);
    return cell_net->forward(x, c.normal, c.reduce);
  }
  if (!fc.empty()) {  // mlp; one statement per layer, as families::arch_cost counts
    torch::Tensor h = x.flatten(1);
    for (size_t i = 0; i < fc.size(); ++i) {
      h = fc[i](h);
      h = fc_bn[i](h);
      h = nn::apply_act(h, fc_act[i]);
    }
    return classifier(h);
  }
  torch::Tensor h = stem_forward(stem, stem_bn, stem_act, x);
  for (auto& b : blocks) h = b->forward(h);
  return head_forward(head, head_bn, head_act, classifier, std::move(h));
}

}  // namespace nas::families
