#include "families/mlp/modules.h"

namespace nas::families::mlp {

ChildModulesImpl::ChildModulesImpl(torch::nn::Module& host, const Choices& a, int64_t inputs, int num_classes) {
  int64_t in = inputs;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const int64_t w = a.layers[i].width;
    const std::string p = "layer" + std::to_string(i);
    fc.push_back(host.register_module(p + "_fc", torch::nn::Linear(torch::nn::LinearOptions(in, w).bias(false))));
    fc_bn.push_back(host.register_module(p + "_bn", torch::nn::BatchNorm1d(w)));
    fc_act.push_back(nn::parse_act(a.layers[i].act));
    in = w;
  }
  classifier = host.register_module("classifier", torch::nn::Linear(in, num_classes));
}

// One statement per layer, as families::arch_cost counts.
torch::Tensor ChildModulesImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x.flatten(1);
  for (size_t i = 0; i < fc.size(); ++i) {
    h = fc[i](h);
    h = fc_bn[i](h);
    h = nn::apply_act(h, fc_act[i]);
  }
  return classifier(h);
}

// Flatten, then per layer a Gemm with its BN folded in, the activation; the classifier.
void ChildModulesImpl::export_onnx(exporter::GraphBuilder& b) {
  exporter::GraphBuilder::integer(b.node("Flatten", {"input"}, "flat"), "axis", 1);
  std::string h = "flat";
  for (size_t i = 0; i < fc.size(); ++i) {
    const std::string p = "layer" + std::to_string(i);
    auto [w, bias] = exporter::fold_bn(fc[i]->weight, fc_bn[i]);
    auto* n = b.node("Gemm", {h, b.initializer(p + ".weight", w), b.initializer(p + ".bias", bias)}, p);
    exporter::GraphBuilder::integer(n, "transB", 1);
    h = b.act(p, fc_act[i]);
  }
  auto* fc = b.node(
      "Gemm",
      {h, b.initializer("classifier.weight", classifier->weight), b.initializer("classifier.bias", classifier->bias)},
      "logits");
  exporter::GraphBuilder::integer(fc, "transB", 1);
}

namespace {

// The supernet's modules: bias-free Linear and BN (on [N, C]) per hidden layer, prefix-sliced, and
// one classifier that whichever layer is last feeds.
class SupernetModulesImpl : public SupernetModules {
 public:
  SupernetModulesImpl(torch::nn::Module& host, const Space& s, int64_t inputs, int num_classes)
      : num_classes_(num_classes) {
    int64_t in = inputs, widest = 0;
    for (size_t i = 0; i < s.layers.size(); ++i) {
      const int64_t w = spec::max_of(s.layers[i].width);
      fc_.push_back(host.register_module("layer" + std::to_string(i) + "_fc", nn::DynamicLinear(in, w, false)));
      bn_.push_back(host.register_module("layer" + std::to_string(i) + "_bn", nn::DynamicBatchNorm2d(w)));
      in = w;
      widest = std::max(widest, w);
    }
    // Whichever layer is last feeds it: as wide as the widest layer.
    classifier_ = host.register_module("classifier", nn::DynamicLinear(widest, num_classes));
  }

  torch::Tensor forward(const torch::Tensor& x, const spec::Arch& arch, double dropout, double,
                        bool training) override {
    const auto& layers = choices_of(arch).layers;
    torch::Tensor h = x.flatten(1);
    for (size_t i = 0; i < layers.size(); ++i)
      h = nn::apply_act(bn_[i](fc_[i](h, layers[i].width)), nn::parse_act(layers[i].act));
    if (dropout > 0 && training) h = nn::dropout_rows(h, dropout);
    return classifier_(h, num_classes_);
  }

  void slice(const spec::Arch& arch, ChildNetImpl& net, const torch::nn::Module&) override {
    ChildModulesImpl& child = *net.modules_as<ChildModulesImpl>();
    const auto& layers = choices_of(arch).layers;
    int64_t in = int64_t{net.in_channels} * arch.resolution * arch.resolution;
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t w = layers[i].width;
      child.fc[i]->weight.copy_(fc_[i]->weight.narrow(0, 0, w).narrow(1, 0, in));
      nn::copy_bn_prefix(child.fc_bn[i], bn_[i]);
      in = w;
    }
    child.classifier->weight.copy_(classifier_->weight.narrow(1, 0, in));
    child.classifier->bias.copy_(classifier_->bias);
  }

 private:
  int num_classes_;
  std::vector<nn::DynamicLinear> fc_;
  std::vector<nn::DynamicBatchNorm2d> bn_;
  nn::DynamicLinear classifier_{nullptr};
};

class MlpTorchFamily : public TorchFamily {
 public:
  std::string name() const override { return "mlp"; }
  std::unique_ptr<SupernetModules> supernet(torch::nn::Module& host, const spec::SearchSpace& s, int in_channels,
                                            int num_classes) const override {
    const int64_t inputs = int64_t{in_channels} * s.resolution.front() * s.resolution.front();
    return std::make_unique<SupernetModulesImpl>(host, space_of(s), inputs, num_classes);
  }
  std::unique_ptr<ChildModules> child(torch::nn::Module& host, const spec::SearchSpace&, const spec::Arch& a,
                                      int in_channels, int num_classes) const override {
    const int64_t inputs = int64_t{in_channels} * a.resolution * a.resolution;
    return std::make_unique<ChildModulesImpl>(host, choices_of(a), inputs, num_classes);
  }
};

}  // namespace

const TorchFamily& torch_family() {
  static const MlpTorchFamily f;
  return f;
}

}  // namespace nas::families::mlp
