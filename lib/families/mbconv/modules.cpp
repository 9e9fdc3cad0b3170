#include "families/mbconv/modules.h"

#include "core/error.h"
#include "nn/shapes.h"

namespace nas::families::mbconv {

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

ChildModulesImpl::ChildModulesImpl(torch::nn::Module& host, const Space& s, const Choices& a, int in_ch, int classes) {
  stem_act = nn::parse_act(s.stem_act);
  head_act = nn::parse_act(s.head_act);
  stem = host.register_module("stem", conv_no_bias(in_ch, a.stem_width, s.stem_kernel, s.stem_stride));
  stem_bn = host.register_module("stem_bn", torch::nn::BatchNorm2d(a.stem_width));
  int64_t ch = a.stem_width;
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const auto& ss = s.stages[i];
    const auto& sa = a.stages[i];
    for (int b = 0; b < sa.depth; ++b) {
      auto blk = ChildBlock(nn::MBConvOptions(ch, sa.width)
                                .expand(sa.blocks[b].expand)
                                .kernel(sa.blocks[b].kernel)
                                .stride(b == 0 ? ss.stride : 1)
                                .has_expand(nn::has_expand(ss.expand))
                                .se(ss.se)
                                .act(nn::parse_act(ss.act))
                                .residual(b > 0));
      blocks.push_back(host.register_module("stage" + std::to_string(i) + "_block" + std::to_string(b), blk));
      ch = sa.width;
    }
  }
  head = host.register_module("head", conv_no_bias(ch, a.head_width, 1, 1));
  head_bn = host.register_module("head_bn", torch::nn::BatchNorm2d(a.head_width));
  classifier = host.register_module("classifier", torch::nn::Linear(a.head_width, classes));
}

torch::Tensor ChildModulesImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = stem_forward(stem, stem_bn, stem_act, x);
  for (auto& b : blocks) h = b->forward(h);
  return head_forward(head, head_bn, head_act, classifier, std::move(h));
}

// Stem, blocks (squeeze-excite as 1x1 convolutions), head, classifier.
void ChildModulesImpl::export_onnx(exporter::GraphBuilder& b) {
  std::string h = b.act(b.conv("stem", "input", stem, &stem_bn), stem_act);
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto& blk = blocks[i];
    const std::string p = "block" + std::to_string(i);
    const std::string x = h;
    if (blk->has_expand) h = b.act(b.conv(p + ".expand", h, blk->expand_conv, &blk->expand_bn), blk->act);
    h = b.act(b.conv(p + ".dw", h, blk->dw_conv, &blk->dw_bn), blk->act);
    if (blk->se) {
      // Squeeze-excite as 1x1 convolutions on the pooled [N, C, 1, 1] tensor.
      b.node("GlobalAveragePool", {h}, p + ".se.pool");
      auto reduce = [&](torch::nn::Linear& l, const std::string& name, const std::string& in) {
        torch::Tensor w = l->weight.reshape({l->weight.size(0), l->weight.size(1), 1, 1});
        auto* n =
            b.node("Conv", {in, b.initializer(name + ".weight", w), b.initializer(name + ".bias", l->bias)}, name);
        exporter::GraphBuilder::ints(n, "kernel_shape", {1, 1});
        return name;
      };
      std::string s = reduce(blk->se_reduce, p + ".se.reduce", p + ".se.pool");
      b.node("Relu", {s}, p + ".se.relu");
      s = reduce(blk->se_expand, p + ".se.expand", p + ".se.relu");
      auto* hs = b.node("HardSigmoid", {s}, p + ".se.gate");
      exporter::GraphBuilder::real(hs, "alpha", 1.0f / 6.0f);
      exporter::GraphBuilder::real(hs, "beta", 0.5f);
      b.node("Mul", {h, p + ".se.gate"}, p + ".se");
      h = p + ".se";
    }
    h = b.conv(p + ".project", h, blk->project_conv, &blk->project_bn);
    if (blk->residual) {
      b.node("Add", {h, x}, p + ".add");
      h = p + ".add";
    }
  }
  h = b.act(b.conv("head", h, head, &head_bn), head_act);
  b.node("GlobalAveragePool", {h}, "pool");
  exporter::GraphBuilder::integer(b.node("Flatten", {"pool"}, "flat"), "axis", 1);
  auto* fc = b.node("Gemm",
                    {"flat", b.initializer("classifier.weight", classifier->weight),
                     b.initializer("classifier.bias", classifier->bias)},
                    "logits");
  exporter::GraphBuilder::integer(fc, "transB", 1);
}

namespace {

void permute_bn(nn::DynamicBatchNorm2d& bn, const torch::Tensor& idx) {
  for (torch::Tensor* t : {&bn->weight, &bn->bias, &bn->running_mean, &bn->running_var})
    t->copy_(t->index_select(0, idx));
}

void copy_conv(torch::nn::Conv2d& dst, const nn::DynamicConv2d& src, int64_t in, int64_t out, int64_t k) {
  dst->weight.copy_(src->active_weight(in, out, k));
}

// The supernet's modules: elastic stem, stages of DynamicMBConv blocks, head and classifier.
class SupernetModulesImpl : public SupernetModules {
 public:
  SupernetModulesImpl(torch::nn::Module& host, const Space& s, int in_channels, int num_classes)
      : space_(s), num_classes_(num_classes) {
    stem_act_ = nn::parse_act(s.stem_act);
    head_act_ = nn::parse_act(s.head_act);
    int64_t max_stem = spec::max_of(s.stem_width);
    stem_ = host.register_module("stem", nn::DynamicConv2d(in_channels, max_stem, s.stem_kernel, s.stem_stride, false));
    stem_bn_ = host.register_module("stem_bn", nn::DynamicBatchNorm2d(max_stem));
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
        blocks.push_back(host.register_module("stage" + std::to_string(i) + "_block" + std::to_string(b), blk));
        ch = out;
      }
      stages_.push_back(blocks);
    }
    int64_t max_head = spec::max_of(s.head_width);
    head_ = host.register_module("head", nn::DynamicConv2d(ch, max_head, 1, 1, false));
    head_bn_ = host.register_module("head_bn", nn::DynamicBatchNorm2d(max_head));
    classifier_ = host.register_module("classifier", nn::DynamicLinear(max_head, num_classes));
  }

  torch::Tensor forward(const torch::Tensor& x, const spec::Arch& arch, double dropout, double drop_connect,
                        bool training) override {
    const auto& a = choices_of(arch);
    torch::Tensor h = nn::to_channels_last(stem_(x, a.stem_width, space_.stem_kernel));
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
    if (dropout > 0 && training) h = nn::dropout_rows(h, dropout);
    return classifier_(h, num_classes_);
  }

  void init_last_bn_gamma(bool zero) override {
    torch::NoGradGuard g;
    for (auto& stage : stages_)
      for (auto& blk : stage)
        if (blk->residual) blk->project_bn->weight.fill_(zero ? 0.0 : 1.0);
  }

  bool sort_channels() override {
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
    return true;
  }
  void slice(const spec::Arch& a, ChildNetImpl& net, const torch::nn::Module&) override {
    const Choices& arch = choices_of(a);
    ChildModulesImpl& child = *net.modules_as<ChildModulesImpl>();
    copy_conv(child.stem, stem_, net.in_channels, arch.stem_width, space_.stem_kernel);
    nn::copy_bn_prefix(child.stem_bn, stem_bn_);
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
          nn::copy_bn_prefix(dst->expand_bn, src->expand_bn);
        }
        copy_conv(dst->dw_conv, src->dw_conv, mid, mid, sa.blocks[b].kernel);
        nn::copy_bn_prefix(dst->dw_bn, src->dw_bn);
        if (src->se) {
          int64_t red = nn::se_channels(static_cast<int>(mid));
          dst->se_reduce->weight.copy_(src->se_reduce->weight.narrow(0, 0, red).narrow(1, 0, mid));
          dst->se_reduce->bias.copy_(src->se_reduce->bias.narrow(0, 0, red));
          dst->se_expand->weight.copy_(src->se_expand->weight.narrow(0, 0, mid).narrow(1, 0, red));
          dst->se_expand->bias.copy_(src->se_expand->bias.narrow(0, 0, mid));
        }
        copy_conv(dst->project_conv, src->project_conv, mid, sa.width, 1);
        nn::copy_bn_prefix(dst->project_bn, src->project_bn);
        ch = sa.width;
      }
    }
    copy_conv(child.head, head_, ch, arch.head_width, 1);
    nn::copy_bn_prefix(child.head_bn, head_bn_);
    child.classifier->weight.copy_(classifier_->weight.narrow(1, 0, arch.head_width));
    child.classifier->bias.copy_(classifier_->bias);
  }

 private:
  Space space_;
  int num_classes_;
  nn::DynamicConv2d stem_{nullptr};
  nn::DynamicBatchNorm2d stem_bn_{nullptr};
  std::vector<std::vector<nn::DynamicMBConv>> stages_;
  nn::DynamicConv2d head_{nullptr};
  nn::DynamicBatchNorm2d head_bn_{nullptr};
  nn::DynamicLinear classifier_{nullptr};
  nn::Act stem_act_{}, head_act_{};
};

class MbconvTorchFamily : public TorchFamily {
 public:
  std::string name() const override { return "mbconv"; }
  std::unique_ptr<SupernetModules> supernet(torch::nn::Module& host, const spec::SearchSpace& s, int in_channels,
                                            int num_classes) const override {
    return std::make_unique<SupernetModulesImpl>(host, space_of(s), in_channels, num_classes);
  }
  std::unique_ptr<ChildModules> child(torch::nn::Module& host, const spec::SearchSpace& s, const spec::Arch& a,
                                      int in_channels, int num_classes) const override {
    return std::make_unique<ChildModulesImpl>(host, space_of(s), choices_of(a), in_channels, num_classes);
  }
  TimedOp timed_op(const LatencyOp& op, int batch) const override;
};

// The stem, a block or the head run by the child's own code (stem_forward, ChildBlock,
// head_forward; channels-last after the stem).
TimedOp MbconvTorchFamily::timed_op(const LatencyOp& op, int batch) const {
  TimedOp r;
  r.input = torch::randn({batch, op.in, op.res, op.res});
  const nn::Act act = nn::parse_act(op.act);
  if (op.kind == "stem") {
    auto m = std::make_shared<torch::nn::Module>();
    torch::nn::Conv2d c = m->register_module("conv", conv_no_bias(op.in, op.out, op.kernel, op.stride));
    torch::nn::BatchNorm2d bn = m->register_module("bn", torch::nn::BatchNorm2d(op.out));
    r.holder = m;
    r.forward = [c, bn, act](const torch::Tensor& in) mutable { return stem_forward(c, bn, act, in); };
    return r;
  }
  r.input = nn::to_channels_last(r.input);
  if (op.kind == "block") {
    auto b = std::make_shared<ChildBlockImpl>(nn::MBConvOptions(op.in, op.out)
                                                  .expand(op.expand)
                                                  .kernel(op.kernel)
                                                  .stride(op.stride)
                                                  .has_expand(op.has_expand)
                                                  .se(op.se)
                                                  .act(act)
                                                  .residual(op.residual));
    r.holder = b;
    r.forward = [b](const torch::Tensor& in) { return b->forward(in); };
    return r;
  }
  NAS_CHECK(op.kind == "head", Error, "mbconv: no latency-table operator " << op.key);
  auto m = std::make_shared<torch::nn::Module>();
  torch::nn::Conv2d c = m->register_module("conv", conv_no_bias(op.in, op.out, 1, 1));
  torch::nn::BatchNorm2d bn = m->register_module("bn", torch::nn::BatchNorm2d(op.out));
  torch::nn::Linear fc = m->register_module("fc", torch::nn::Linear(op.out, op.classes));
  r.holder = m;
  r.forward = [c, bn, fc, act](const torch::Tensor& in) mutable { return head_forward(c, bn, act, fc, in); };
  return r;
}

}  // namespace

const TorchFamily& torch_family() {
  static const MbconvTorchFamily f;
  return f;
}

}  // namespace nas::families::mbconv
