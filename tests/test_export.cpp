// ONNX export: BatchNorm folding, and the exported children run in ONNX Runtime against LibTorch.
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/rng.h"
#include "eval/benchmark.h"
#include "eval/memory.h"
#include "export/onnx_export.h"
#include "families/cell/cell.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/mlp/mlp.h"
#include "families/modules.h"
#include "families/sampling.h"
#include "helpers.h"
#include "spec/bench_result.h"
#include "spec/search_result.h"
#include "spec/search_space.h"
#include "supernet/latency_table.h"
#include "supernet_helpers.h"

using namespace nas;
using nlohmann::json;

namespace {
spec::SearchSpace fmnist() { return families::load_search_space(test::src("configs/spaces/fmnist-mbconv.yaml")); }

template <typename BN>
void randomize_bn_stats(BN& bn) {
  torch::NoGradGuard g;
  bn->running_mean.uniform_(-1, 1);
  bn->running_var.uniform_(0.5, 2);
  bn->weight.uniform_(0.5, 1.5);
  bn->bias.uniform_(-0.5, 0.5);
  bn->eval();
}
}  // namespace

TEST_CASE("folding BN into the convolution (or the Linear) before it keeps outputs allclose", "[export]") {
  torch::manual_seed(4);
  for (int64_t groups : {1, 8}) {
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(8, 8, 3).padding(1).groups(groups).bias(false));
    torch::nn::BatchNorm2d bn(8);
    randomize_bn_stats(bn);
    torch::Tensor x = torch::randn({2, 8, 7, 7});
    auto [w, b] = exporter::fold_bn(conv->weight, bn);
    torch::Tensor folded = torch::conv2d(x, w, b, 1, 1, 1, groups);
    CHECK(torch::allclose(folded, bn(conv(x)), 1e-5, 1e-5));
    CHECK_FALSE(torch::allclose(torch::conv2d(x, conv->weight, {}, 1, 1, 1, groups), bn(conv(x)), 1e-2, 1e-2));
  }
  // The mlp family's hidden layers: a bias-free Linear, then BatchNorm1d.
  torch::nn::Linear fc(torch::nn::LinearOptions(6, 4).bias(false));
  torch::nn::BatchNorm1d bn(4);
  randomize_bn_stats(bn);
  torch::Tensor x = torch::randn({3, 6});
  auto [w, b] = exporter::fold_bn(fc->weight, bn);
  CHECK(torch::allclose(torch::linear(x, w, b), bn(fc(x)), 1e-5, 1e-5));
  CHECK_FALSE(torch::allclose(fc(x), bn(fc(x)), 1e-2, 1e-2));
}

TEST_CASE("ONNX export: ONNX Runtime agrees with LibTorch on 10 mbconv, 5 mlp and 14 cell children, the max and the min among them", "[export]") {
  if (!exporter::onnx_available()) {
    WARN("skipped: this build has no ONNX support (libonnx-dev)");
    return;
  }
  auto s = fmnist();
  std::string d = test::temp_dir("onnx");
  // Where scripts/setup.sh puts onnxruntime-node: this build's directory, or build/ of the checkout.
  const std::string modules = test::ort_node_modules();
  const bool node = !modules.empty();
  if (!node) WARN("ONNX Runtime check skipped: needs node and onnxruntime-node (scripts/setup.sh)");
  const bool py_onnx = test::run_cmd("/usr/bin/python3 -c 'import onnx'").code == 0;
  Rng rng(12);
  std::vector<std::pair<spec::SearchSpace, spec::Arch>> children = {{s, families::max_arch(s)}, {s, families::min_arch(s)}};
  for (int i = 0; i < 8; ++i) children.push_back({s, families::random_arch(s, rng)});
  // The mlp family too (issue 6): its max and min, and one child with each other activation.
  auto mlp = families::load_search_space(test::src("configs/spaces/fmnist-mlp.yaml"));
  children.push_back({mlp, families::max_arch(mlp)});
  children.push_back({mlp, families::min_arch(mlp)});
  for (const char* act : {"gelu", "swish", "tanh"}) {
    spec::Arch a = families::random_arch(mlp, rng);
    families::edit<families::mlp::Choices>(a).layers[0].act = act;
    children.push_back({mlp, a});
  }
  // The cell family too: every op on every edge of both cells (none: zero nodes), and mixed cells.
  auto cell = families::load_search_space(test::test_data("tiny-cell.yaml"));
  for (const auto& op : families::cell::space_of(cell).ops) {
    spec::Arch a = families::max_arch(cell);
    auto& c = families::edit<families::cell::Choices>(a);
    c.normal.assign(c.normal.size(), op);
    c.reduce.assign(c.reduce.size(), op);
    children.push_back({cell, a});
  }
  for (int i = 0; i < 3; ++i) children.push_back({cell, families::random_arch(cell, rng)});
  torch::manual_seed(12);
  for (size_t i = 0; i < children.size(); ++i) {
    const auto& a = children[i].second;
    INFO(families::arch_summary(a));
    families::ChildNet net(children[i].first, a, 1, 10);
    {
      // BN statistics far from the identity, so that folding them matters.
      torch::NoGradGuard g;
      auto randomize = [](auto* b) {
        b->running_mean.uniform_(-0.5, 0.5);
        b->running_var.uniform_(0.5, 2.0);
        b->weight.uniform_(0.5, 1.5);
        b->bias.uniform_(-0.2, 0.2);
      };
      for (auto& m : net->modules(false)) {
        if (auto* b = m->as<torch::nn::BatchNorm2dImpl>()) randomize(b);
        if (auto* b = m->as<torch::nn::BatchNorm1dImpl>()) randomize(b);
      }
    }
    net->eval();
    std::string bytes = families::export_onnx(net);  // throws when the ONNX checker rejects it
    CHECK(bytes.size() > 500);
    const std::string model = d + "/" + std::to_string(i) + ".onnx";
    test::spit(model, bytes);
    if (py_onnx) {  // a second, independent checker
      auto r = test::run_cmd("/usr/bin/python3 -c 'import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
                             "assert m.opset_import[0].version >= 13' " + model);
      INFO(r.err);
      CHECK(r.code == 0);
    }
    if (node) test::check_onnx_runtime_agrees(net, a.resolution, model, modules, d);
  }
}
