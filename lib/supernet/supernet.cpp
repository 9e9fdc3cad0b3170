#include "supernet/supernet.h"

#include "core/error.h"
#include "families/cell/cell.h"
#include "families/mlp/mlp.h"
#include "families/sampling.h"
#include "nn/shapes.h"

namespace nas::supernet {

SupernetImpl::SupernetImpl(const spec::SearchSpace& s, int in_channels, int num_classes)
    : space_(s), in_channels_(in_channels), num_classes_(num_classes) {
  NAS_CHECK(in_channels > 0 && num_classes >= 1, SpecError,
            "supernet: expected at least 1 input channel and 1 output (a regression target, or 2 classes), found " << in_channels << " and "
                                                                               << num_classes);
  if (s.family == "cell") {
    cell_net_ = register_module("net", families::cell::CellNet(s, families::cell::all_ops(s), families::cell::all_ops(s),
                                                               in_channels, num_classes, true));
    active_ = families::max_arch(s);
    return;
  }
  if (s.family == "mlp") {
    int64_t in = int64_t{in_channels} * s.resolution.front() * s.resolution.front();
    int64_t widest = 0;
    const auto& layers = families::mlp::space_of(s).layers;
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t w = spec::max_of(layers[i].width);
      mlp_fc_.push_back(register_module("layer" + std::to_string(i) + "_fc", nn::DynamicLinear(in, w, false)));
      mlp_bn_.push_back(register_module("layer" + std::to_string(i) + "_bn", nn::DynamicBatchNorm2d(w)));
      in = w;
      widest = std::max(widest, w);
    }
    // Whichever layer is last feeds it: as wide as the widest layer.
    classifier_ = register_module("classifier", nn::DynamicLinear(widest, num_classes));
    active_ = families::max_arch(s);
    return;
  }
  build_mbconv(families::mbconv::space_of(s), in_channels, num_classes);
  active_ = families::max_arch(s);
}

void SupernetImpl::build_mbconv(const families::mbconv::Space& s, int in_channels, int num_classes) {
  stem_act_ = nn::parse_act(s.stem_act);
  head_act_ = nn::parse_act(s.head_act);
  int64_t max_stem = spec::max_of(s.stem_width);
  stem_ = register_module("stem", nn::DynamicConv2d(in_channels, max_stem, s.stem_kernel, s.stem_stride, false));
  stem_bn_ = register_module("stem_bn", nn::DynamicBatchNorm2d(max_stem));
  int64_t ch = max_stem;
  for (size_t i = 0; i < s.stages.size(); ++i) {
    const auto& st = s.stages[i];
    std::vector<nn::DynamicMBConv> blocks;
    int64_t out = spec::max_of(st.width);
    for (int b = 0; b < spec::max_of(st.depth); ++b) {
      auto blk = nn::DynamicMBConv(nn::MBConvOptions(ch, out)
                                       .expand(spec::max_of(st.expand))
                                       .kernel(spec::max_of(st.kernel))
                                       .stride(b == 0 ? st.stride : 1)
                                       .has_expand(nn::has_expand(st.expand))
                                       .se(st.se)
                                       .act(nn::parse_act(st.act))
                                       .residual(b > 0));
      blocks.push_back(register_module("stage" + std::to_string(i) + "_block" + std::to_string(b), blk));
      ch = out;
    }
    stages_.push_back(blocks);
    stage_act_.push_back(nn::parse_act(st.act));
  }
  int64_t max_head = spec::max_of(s.head_width);
  head_ = register_module("head", nn::DynamicConv2d(ch, max_head, 1, 1, false));
  head_bn_ = register_module("head_bn", nn::DynamicBatchNorm2d(max_head));
  classifier_ = register_module("classifier", nn::DynamicLinear(max_head, num_classes));
}

void SupernetImpl::init_last_bn_gamma(bool zero) {
  torch::NoGradGuard g;
  for (auto& stage : stages_)
    for (auto& blk : stage)
      if (blk->residual) blk->project_bn->weight.fill_(zero ? 0.0 : 1.0);
}

namespace {
void permute_bn(nn::DynamicBatchNorm2d& bn, const torch::Tensor& idx) {
  for (torch::Tensor* t : {&bn->weight, &bn->bias, &bn->running_mean, &bn->running_var}) t->copy_(t->index_select(0, idx));
}
}  // namespace

void SupernetImpl::sort_channels() {
  torch::NoGradGuard g;
  for (auto& stage : stages_) {
    for (auto& blk : stage) {
      if (!blk->has_expand) continue;  // the middle channels are the block's input: nothing to sort
      if (blk->se) {
        // SE bottleneck: by the L1 norm of the expand weights that read each reduced channel.
        torch::Tensor idx = blk->se_expand->weight.abs().sum(0).argsort(0, /*descending=*/true);
        blk->se_reduce->weight.copy_(blk->se_reduce->weight.index_select(0, idx));
        blk->se_reduce->bias.copy_(blk->se_reduce->bias.index_select(0, idx));
        blk->se_expand->weight.copy_(blk->se_expand->weight.index_select(1, idx));
      }
      // Middle channels: by the L1 norm of the projection weights that read them.
      torch::Tensor idx = blk->project_conv->weight.abs().sum({0, 2, 3}).argsort(0, /*descending=*/true);
      auto& ec = blk->expand_conv->weight;
      ec.copy_(ec.index_select(0, idx));
      permute_bn(blk->expand_bn, idx);
      auto& dw = blk->dw_conv->weight;
      dw.copy_(dw.index_select(0, idx));
      permute_bn(blk->dw_bn, idx);
      if (blk->se) {
        blk->se_reduce->weight.copy_(blk->se_reduce->weight.index_select(1, idx));
        blk->se_expand->weight.copy_(blk->se_expand->weight.index_select(0, idx));
        blk->se_expand->bias.copy_(blk->se_expand->bias.index_select(0, idx));
      }
      auto& pc = blk->project_conv->weight;
      pc.copy_(pc.index_select(1, idx));
    }
  }
}

void SupernetImpl::set_active(const spec::Arch& arch) {
  families::validate_arch(arch, space_, "arch");
  active_ = arch;
}

torch::Tensor SupernetImpl::forward(const torch::Tensor& x) { return forward_child(x, active_); }

torch::Tensor SupernetImpl::forward_child(const torch::Tensor& x, const spec::Arch& arch, double dropout,
                                          double drop_connect) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == in_channels_, "supernet: expected input [N, ", in_channels_,
              ", R, R], got ", x.sizes());
  if (space_.family == "cell") {
    const auto& c = families::cell::choices_of(arch);
    return cell_net_->forward(x, c.normal, c.reduce, dropout);
  }
  if (space_.family == "mlp") {
    const auto& layers = families::mlp::choices_of(arch).layers;
    torch::Tensor h = x.flatten(1);
    for (size_t i = 0; i < layers.size(); ++i)
      h = nn::apply_act(mlp_bn_[i](mlp_fc_[i](h, layers[i].width)), nn::parse_act(layers[i].act));
    if (dropout > 0 && is_training()) h = nn::dropout_rows(h, dropout);
    return classifier_(h, num_classes_);
  }
  const auto& a = families::mbconv::choices_of(arch);
  torch::Tensor h = nn::to_channels_last(stem_(x, a.stem_width, families::mbconv::space_of(space_).stem_kernel));
  h = nn::apply_act(stem_bn_(h), stem_act_);
  int active_blocks = 0, k = 0;
  for (const auto& sa : a.stages) active_blocks += sa.depth;
  for (size_t i = 0; i < stages_.size(); ++i) {
    const auto& sa = a.stages[i];
    for (int b = 0; b < sa.depth; ++b, ++k) {
      double rate = drop_connect * static_cast<double>(k) / static_cast<double>(active_blocks);
      h = stages_[i][b](h, sa.blocks[b].expand, sa.blocks[b].kernel, sa.width, rate);
    }
  }
  h = nn::apply_act(head_bn_(head_(h, a.head_width, 1)), head_act_);
  h = h.mean({2, 3});
  if (dropout > 0 && is_training()) h = nn::dropout_rows(h, dropout);
  return classifier_(h, num_classes_);
}

torch::Tensor SupernetImpl::forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                                         const torch::Tensor& reduce_weights) {
  NAS_CHECK(cell_net_, UsageError, "the continuous relaxation needs a cell space; \"" << space_.name << "\" is family "
                                                                                     << space_.family);
  return cell_net_->forward_mixed(x, normal_weights, reduce_weights);
}

namespace {
void copy_conv(torch::nn::Conv2d& dst, const nn::DynamicConv2d& src, int64_t in, int64_t out, int64_t k) {
  dst->weight.copy_(src->active_weight(in, out, k));
}
template <typename BN>
void copy_bn(BN& dst, const nn::DynamicBatchNorm2d& src) {
  int64_t c = dst->options.num_features();
  dst->weight.copy_(src->weight.narrow(0, 0, c));
  dst->bias.copy_(src->bias.narrow(0, 0, c));
  dst->running_mean.copy_(src->running_mean.narrow(0, 0, c));
  dst->running_var.copy_(src->running_var.narrow(0, 0, c));
  dst->options.eps(src->eps);
}
}  // namespace

families::ChildNet SupernetImpl::slice(const spec::Arch& arch) {
  families::validate_arch(arch, space_, "arch");
  families::ChildNet child(space_, arch, in_channels_, num_classes_);
  torch::NoGradGuard no_grad;
  if (space_.family == "cell") {
    nn::copy_state_by_name(*child, *this);  // the child's modules are named as the supernet's
    return child;
  }
  if (space_.family == "mlp") {
    int64_t in = int64_t{in_channels_} * arch.resolution * arch.resolution;
    const auto& layers = families::mlp::choices_of(arch).layers;
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t w = layers[i].width;
      child->fc[i]->weight.copy_(mlp_fc_[i]->weight.narrow(0, 0, w).narrow(1, 0, in));
      copy_bn(child->fc_bn[i], mlp_bn_[i]);
      in = w;
    }
    child->classifier->weight.copy_(classifier_->weight.narrow(1, 0, in));
    child->classifier->bias.copy_(classifier_->bias);
    return child;
  }
  slice_mbconv(families::mbconv::choices_of(arch), *child);
  return child;
}

void SupernetImpl::slice_mbconv(const families::mbconv::Choices& arch, families::ChildNetImpl& child) {
  copy_conv(child.stem, stem_, in_channels_, arch.stem_width, families::mbconv::space_of(space_).stem_kernel);
  copy_bn(child.stem_bn, stem_bn_);
  int64_t ch = arch.stem_width;
  size_t k = 0;
  for (size_t i = 0; i < stages_.size(); ++i) {
    const auto& sa = arch.stages[i];
    for (int b = 0; b < sa.depth; ++b) {
      auto& src = stages_[i][b];
      auto& dst = child.blocks[k++];
      int64_t mid = src->has_expand ? ch * sa.blocks[b].expand : ch;
      if (src->has_expand) {
        copy_conv(dst->expand_conv, src->expand_conv, ch, mid, 1);
        copy_bn(dst->expand_bn, src->expand_bn);
      }
      copy_conv(dst->dw_conv, src->dw_conv, mid, mid, sa.blocks[b].kernel);
      copy_bn(dst->dw_bn, src->dw_bn);
      if (src->se) {
        int64_t red = nn::se_channels(static_cast<int>(mid));
        dst->se_reduce->weight.copy_(src->se_reduce->weight.narrow(0, 0, red).narrow(1, 0, mid));
        dst->se_reduce->bias.copy_(src->se_reduce->bias.narrow(0, 0, red));
        dst->se_expand->weight.copy_(src->se_expand->weight.narrow(0, 0, mid).narrow(1, 0, red));
        dst->se_expand->bias.copy_(src->se_expand->bias.narrow(0, 0, mid));
      }
      copy_conv(dst->project_conv, src->project_conv, mid, sa.width, 1);
      copy_bn(dst->project_bn, src->project_bn);
      ch = sa.width;
    }
  }
  copy_conv(child.head, head_, ch, arch.head_width, 1);
  copy_bn(child.head_bn, head_bn_);
  child.classifier->weight.copy_(classifier_->weight.narrow(1, 0, arch.head_width));
  child.classifier->bias.copy_(classifier_->bias);
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
