#include "families/resnet/modules.h"

#include "nn/elastic.h"
#include "nn/shapes.h"

namespace nas::families::resnet {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

std::string block_name(size_t stage, int block) {
  return "stage" + std::to_string(stage) + "_block" + std::to_string(block);
}

}  // namespace

ChildBlockImpl::ChildBlockImpl(int64_t in, int64_t mid, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", conv(in, mid, 1, 1));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(mid));
  conv2 = register_module("conv2", conv(mid, mid, 3, stride));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(mid));
  conv3 = register_module("conv3", conv(mid, out, 1, 1));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(out));
  if (stride != 1 || in != out) {
    shortcut_conv = register_module("shortcut_conv", conv(in, out, 1, stride));
    shortcut_bn = register_module("shortcut_bn", torch::nn::BatchNorm2d(out));
  }
}

// One statement per layer, as the analytic cost counts.
torch::Tensor ChildBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = conv1(x);
  h = bn1(h);
  h = nn::apply_act(h, nn::Act::kReLU);
  h = conv2(h);
  h = bn2(h);
  h = nn::apply_act(h, nn::Act::kReLU);
  h = conv3(h);
  h = bn3(h);
  if (shortcut_conv) {
    torch::Tensor s = shortcut_conv(x);
    s = shortcut_bn(s);
    h = h + s;
  } else {
    h = h + x;
  }
  return nn::apply_act(h, nn::Act::kReLU);
}

ChildModulesImpl::ChildModulesImpl(torch::nn::Module& host, const Space& s, const Choices& a, int in_channels,
                                   int num_classes) {
  int64_t ch = scaled(s.stem_width, a.width_mult);
  stem = host.register_module("stem", conv(in_channels, ch, 3, 1));
  stem_bn = host.register_module("stem_bn", torch::nn::BatchNorm2d(ch));
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const int64_t out = scaled(s.stages[i].width, a.width_mult);
    for (int b = 0; b < a.stages[i].depth; ++b) {
      const int64_t mid = scaled(static_cast<int>(out), a.stages[i].expand[static_cast<size_t>(b)]);
      blocks.push_back(
          host.register_module(block_name(i, b), ChildBlock(ch, mid, out, b == 0 ? s.stages[i].stride : 1)));
      ch = out;
    }
  }
  classifier = host.register_module("classifier", torch::nn::Linear(ch, num_classes));
}

torch::Tensor ChildModulesImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = nn::to_channels_last(stem(x));
  h = stem_bn(h);
  h = nn::apply_act(h, nn::Act::kReLU);
  for (auto& b : blocks) h = b->forward(h);
  h = h.mean({2, 3});
  return classifier(h);
}

void ChildModulesImpl::export_onnx(exporter::GraphBuilder& b) {
  std::string h = b.act(b.conv("stem", "input", stem, &stem_bn), nn::Act::kReLU);
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto& blk = *blocks[i];
    const std::string p = "block" + std::to_string(i), x = h;
    h = b.act(b.conv(p + ".conv1", h, blk.conv1, &blk.bn1), nn::Act::kReLU);
    h = b.act(b.conv(p + ".conv2", h, blk.conv2, &blk.bn2), nn::Act::kReLU);
    h = b.conv(p + ".conv3", h, blk.conv3, &blk.bn3);
    const std::string s = blk.shortcut_conv ? b.conv(p + ".shortcut", x, blk.shortcut_conv, &blk.shortcut_bn) : x;
    b.node("Add", {h, s}, p + ".add");
    h = b.act(p + ".add", nn::Act::kReLU);
  }
  b.node("GlobalAveragePool", {h}, "pool");
  exporter::GraphBuilder::integer(b.node("Flatten", {"pool"}, "flat"), "axis", 1);
  auto* fc = b.node("Gemm", {"flat", b.initializer("classifier.weight", classifier->weight),
                             b.initializer("classifier.bias", classifier->bias)},
                    "logits");
  exporter::GraphBuilder::integer(fc, "transB", 1);
}

namespace {

// One elastic bottleneck block: every conv holds its largest shape; a child uses prefix slices.
// Its submodules are named as a child block's.
class ElasticBlockImpl : public torch::nn::Module {
 public:
  ElasticBlockImpl(int64_t in, int64_t mid, int64_t out, int64_t stride, bool shortcut) {
    conv1 = register_module("conv1", nn::DynamicConv2d(in, mid, 1, 1, false));
    bn1 = register_module("bn1", nn::DynamicBatchNorm2d(mid));
    conv2 = register_module("conv2", nn::DynamicConv2d(mid, mid, 3, stride, false));
    bn2 = register_module("bn2", nn::DynamicBatchNorm2d(mid));
    conv3 = register_module("conv3", nn::DynamicConv2d(mid, out, 1, 1, false));
    bn3 = register_module("bn3", nn::DynamicBatchNorm2d(out));
    if (shortcut) {
      shortcut_conv = register_module("shortcut_conv", nn::DynamicConv2d(in, out, 1, stride, false));
      shortcut_bn = register_module("shortcut_bn", nn::DynamicBatchNorm2d(out));
    }
  }
  // The child block with `mid` middle and `out` output channels; the shortcut projects when the
  // child's shape changes (`project`).
  torch::Tensor forward(const torch::Tensor& x, int64_t mid, int64_t out, bool project) {
    torch::Tensor y = nn::apply_act(bn1(conv1(x, mid, 1)), nn::Act::kReLU);
    y = nn::apply_act(bn2(conv2(y, mid, 3)), nn::Act::kReLU);
    y = bn3(conv3(y, out, 1));
    y = y + (project ? shortcut_bn(shortcut_conv(x, out, 1)) : x);
    return nn::apply_act(y, nn::Act::kReLU);
  }

  nn::DynamicConv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, shortcut_conv{nullptr};
  nn::DynamicBatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, shortcut_bn{nullptr};
};
TORCH_MODULE(ElasticBlock);

// The supernet's modules, named as a child's so that slicing copies prefixes of the same names.
class SupernetModulesImpl : public SupernetModules {
 public:
  SupernetModulesImpl(torch::nn::Module& host, const Space& s, int in_channels, int num_classes)
      : space_(s), num_classes_(num_classes) {
    const int top = spec::max_of(s.width_mult);
    int64_t ch = scaled(s.stem_width, top);
    stem_ = host.register_module("stem", nn::DynamicConv2d(in_channels, ch, 3, 1, false));
    stem_bn_ = host.register_module("stem_bn", nn::DynamicBatchNorm2d(ch));
    for (size_t i = 0; i < s.stages.size(); ++i) {
      const auto& st = s.stages[i];
      const int64_t out = scaled(st.width, top), mid = scaled(static_cast<int>(out), spec::max_of(st.expand));
      std::vector<ElasticBlock> stage;
      for (int b = 0; b < spec::max_of(st.depth); ++b) {
        // Only a stage's first block can change a child's shape.
        stage.push_back(host.register_module(block_name(i, b),
                                             ElasticBlock(ch, mid, out, b == 0 ? st.stride : 1, /*shortcut=*/b == 0)));
        ch = out;
      }
      stages_.push_back(stage);
    }
    classifier_ = host.register_module("classifier", nn::DynamicLinear(ch, num_classes));
  }

  torch::Tensor forward(const torch::Tensor& x, const spec::Arch& arch, double dropout, double,
                        bool training) override {
    const Choices& a = choices_of(arch);
    int64_t ch = scaled(space_.stem_width, a.width_mult);
    torch::Tensor h = nn::apply_act(stem_bn_(nn::to_channels_last(stem_(x, ch, 3))), nn::Act::kReLU);
    for (size_t i = 0; i < stages_.size(); ++i) {
      const int64_t out = scaled(space_.stages[i].width, a.width_mult);
      for (int b = 0; b < a.stages[i].depth; ++b) {
        const int64_t mid = scaled(static_cast<int>(out), a.stages[i].expand[static_cast<size_t>(b)]);
        const bool project = b == 0 && (space_.stages[i].stride != 1 || ch != out);
        h = stages_[i][static_cast<size_t>(b)]->forward(h, mid, out, project);
        ch = out;
      }
    }
    h = h.mean({2, 3});
    if (dropout > 0 && training) h = nn::dropout_rows(h, dropout);
    return classifier_(h, num_classes_);
  }

  // Every block's last BN (its residual branch's output): 0 makes each block start as the identity
  // (or as its shortcut's projection).
  void init_last_bn_gamma(bool zero) override {
    torch::NoGradGuard g;
    for (auto& stage : stages_)
      for (auto& blk : stage) blk->bn3->weight.fill_(zero ? 0.0 : 1.0);
  }

  // The child's modules are named as these, and each of its tensors is a prefix slice (centre
  // crop for kernels) of the supernet's: the child's shapes say which.
  void slice(const spec::Arch&, ChildNetImpl& child, const torch::nn::Module& host) override {
    nn::copy_state_by_name(child, host, nn::Fit::kLeadingSlice);
  }

 private:
  Space space_;
  int num_classes_;
  nn::DynamicConv2d stem_{nullptr};
  nn::DynamicBatchNorm2d stem_bn_{nullptr};
  std::vector<std::vector<ElasticBlock>> stages_;
  nn::DynamicLinear classifier_{nullptr};
};

class ResnetTorchFamily : public TorchFamily {
 public:
  std::string name() const override { return "resnet"; }
  std::unique_ptr<SupernetModules> supernet(torch::nn::Module& host, const spec::SearchSpace& s, int in_channels,
                                            int num_classes) const override {
    return std::make_unique<SupernetModulesImpl>(host, space_of(s), in_channels, num_classes);
  }
  std::unique_ptr<ChildModules> child(torch::nn::Module& host, const spec::SearchSpace& s, const spec::Arch& a,
                                      int in_channels, int num_classes) const override {
    return std::make_unique<ChildModulesImpl>(host, space_of(s), choices_of(a), in_channels, num_classes);
  }
};

}  // namespace

const TorchFamily& torch_family() {
  static const ResnetTorchFamily f;
  return f;
}

}  // namespace nas::families::resnet
