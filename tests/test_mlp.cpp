// The mlp family (issue 6): its space and arch documents, costs by hand, the supernet against its
// sliced children, the shared decision encoding, ONNX export and the four tools on real data.
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/idx.h"
#include "eval/memory.h"
#include "export/onnx_export.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/mlp/mlp.h"
#include "families/modules.h"
#include "families/sampling.h"
#include "helpers.h"
#include "nn/elastic.h"
#include "search/encoding.h"
#include "spec/arch.h"
#include "spec/search_result.h"
#include "spec/search_space.h"
#include "supernet/latency_table.h"
#include "supernet/supernet.h"
#include "supernet_helpers.h"

using namespace nas;
using nlohmann::json;

namespace {
spec::SearchSpace tiny_mlp() { return families::load_search_space(test::test_data("tiny-mlp.yaml")); }

using test::error_of;


json space_doc() {
  return {{"kind", "nas.search_space"}, {"schema_version", 1}, {"name", "m"}, {"family", "mlp"},
          {"resolution", {28}},         {"depth", {1, 3}},     {"layers", {{{"width", {64, 32}}, {"act", {"relu", "gelu"}}}}}};
}
}  // namespace

TEST_CASE("mlp spaces: one layer spec serves every layer; bad specs name the field", "[mlp]") {
  auto s = families::search_space_from_json(space_doc(), "m.yaml");
  CHECK(s.family == "mlp");
  const auto& layers = families::mlp::space_of(s).layers;
  REQUIRE(layers.size() == 3);  // the one spec, for each layer up to max(depth)
  CHECK(layers[2].width == std::vector<int>{32, 64});
  CHECK(layers[2].act == std::vector<std::string>{"relu", "gelu"});  // in the file's order
  CHECK(families::mlp::space_of(families::search_space_from_json(spec::to_json(s), "again")).layers.size() == 3);
  json j = space_doc();
  j["resolution"] = {20, 28};
  CHECK_THAT(error_of([&] { families::search_space_from_json(j, "m.yaml"); }),
             Catch::Matchers::Contains("m.yaml: resolution: expected exactly one input resolution"));
  j = space_doc();
  j["layers"] = {j["layers"][0], j["layers"][0]};
  CHECK_THAT(error_of([&] { families::search_space_from_json(j, "m.yaml"); }),
             Catch::Matchers::Contains("m.yaml: layers: expected one layer spec for every layer, or 3"));
  j = space_doc();
  j["layers"][0]["act"] = {"relu", "softplus"};
  CHECK_THAT(error_of([&] { families::search_space_from_json(j, "m.yaml"); }),
             Catch::Matchers::Contains("m.yaml: layers[0].act: expected a non-empty list of distinct activations"));
  j = space_doc();
  j["stem"] = {{"width", {8}}};
  CHECK_THAT(error_of([&] { families::search_space_from_json(j, "m.yaml"); }), Catch::Matchers::Contains("stem"));
}

TEST_CASE("mlp archs: JSON round trip, membership errors, sampling stays in the space", "[mlp]") {
  auto s = tiny_mlp();
  spec::Arch a = families::max_arch(s);
  const auto& layers = families::mlp::choices_of(a).layers;
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].width == 8);
  CHECK(layers[0].act == "relu");  // the first listed
  CHECK(layers[1].act == "tanh");
  CHECK(families::mlp::choices_of(families::min_arch(s)).layers.size() == 1);
  CHECK(families::arch_from_json(spec::to_json(a), "a.json") == a);
  CHECK(families::arch_summary(a) == "r4 [8 relu, 4 tanh]");
  spec::Arch b = a;
  families::edit<families::mlp::Choices>(b).layers[1].act = "relu";
  CHECK_THAT(error_of([&] { families::validate_arch(b, s, "b.json"); }),
             Catch::Matchers::Contains("b.json: layers[1].act: expected one of [tanh, swish] (outside the search space), found \"relu\""));
  b = a;
  families::edit<families::mlp::Choices>(b).layers[0].width = 7;
  CHECK_THAT(error_of([&] { families::validate_arch(b, s, "b.json"); }),
             Catch::Matchers::Contains("b.json: layers[0].width: expected one of [6, 8]"));
  families::edit<families::mlp::Choices>(b).layers = {layers[0], layers[1], layers[1]};
  CHECK_THAT(error_of([&] { families::validate_arch(b, s, "b.json"); }), Catch::Matchers::Contains("b.json: depth: expected one of [1, 2]"));
  // An mbconv child is not an mlp child.
  auto mb = families::load_search_space(test::test_data("tiny-space.yaml"));
  spec::Arch m = families::max_arch(mb);
  m.space = s.name;
  CHECK_THAT(error_of([&] { families::validate_arch(m, s, "m.json"); }), Catch::Matchers::Contains("m.json: layers: expected the hidden layers"));
  Rng rng(5);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    spec::Arch r = families::random_arch(s, rng);
    families::validate_arch(r, s, "random");
    seen.insert(spec::arch_hash(r));
    spec::Arch mu = families::mutate_arch(r, s, rng, 0.3);
    families::validate_arch(mu, s, "mutated");
    CHECK(mu != r);
  }
  // 2 x 2 one-layer children and (2 x 2) x (2 x 2) two-layer ones.
  CHECK(seen.size() == 4 + 16);
}

TEST_CASE("mlp costs by hand, and as the modules count them", "[mlp]") {
  auto s = tiny_mlp();
  spec::Arch a;
  a.space = s.name;
  a.resolution = 4;
  auto layers = std::make_shared<families::mlp::Choices>();
  layers->layers = {{8, "relu"}, {4, "swish"}};
  a.choices = layers;
  // 2 channels of 4x4: 32 inputs. Linear 32x8 (no bias), BN 8, Linear 8x4, BN 4, classifier 4x3 + 3.
  auto c = families::arch_cost(s, a, 2, 3);
  CHECK(c.macs == 32 * 8 + 8 * 4 + 4 * 3);
  CHECK(c.params == 32 * 8 + 2 * 8 + 8 * 4 + 2 * 4 + 4 * 3 + 3);
  // Peak: the input (32) held throughout; the worst point is BN of layer 0 (8 in, 8 out, and its
  // per-channel scale and shift, 8 each).
  CHECK(c.peak_activations == 32 + 4 * 8);
  families::ChildNet net(s, a, 2, 3);
  CHECK(test::numel_of(*net) == c.params);
  // The fmnist space: analytic peak activations against the measured peak of an inference.
  auto f = families::load_search_space(test::src("configs/spaces/fmnist-mlp.yaml"));
  Rng rng(3);
  torch::NoGradGuard g;
  for (int i = 0; i < 4; ++i) {
    spec::Arch r = i == 0 ? families::max_arch(f) : families::random_arch(f, rng);
    INFO(families::arch_summary(r));
    families::ChildNet child(f, r, 1, 10);
    child->eval();
    torch::Tensor x = torch::randn({1, 1, 28, 28});
    child->forward(x);
    auto m = eval::measure_peak_memory([&] { child->forward(x); });
    const double analytic = 4.0 * static_cast<double>(families::arch_cost(f, r, 1, 10).peak_activations);
    // The input exists before the measurement starts and the flattening is a view: add it.
    const double measured = static_cast<double>(m.peak_bytes) + 4.0 * static_cast<double>(x.numel());
    INFO("measured " << measured << " analytic " << analytic);
    CHECK(measured >= 0.9 * analytic);
    CHECK(measured <= 1.2 * analytic);
  }
}

TEST_CASE("an mlp child sliced from the supernet computes what the supernet computes", "[mlp]") {
  torch::manual_seed(1);
  auto s = tiny_mlp();
  supernet::Supernet net(s, 2, 3);
  test::randomize_bn(net);
  net->eval();
  Rng rng(2);
  torch::Tensor x = torch::randn({5, 2, 4, 4});
  std::set<std::string> outputs;
  for (int i = 0; i < 12; ++i) {
    spec::Arch a = i == 0 ? families::max_arch(s) : i == 1 ? families::min_arch(s) : families::random_arch(s, rng);
    INFO(families::arch_summary(a));
    net->set_active(a);
    torch::NoGradGuard g;
    torch::Tensor want = net->forward(x);
    families::ChildNet child = net->slice(a);
    child->eval();
    torch::Tensor got = child->forward(x);
    REQUIRE(got.sizes() == want.sizes());
    CHECK(torch::allclose(got, want, 1e-5, 1e-6));
    outputs.insert(std::to_string(want.sum().item<double>()));
  }
  CHECK(outputs.size() > 6);  // different children compute different functions
  // Training at batch size 1: one value per channel, a clear error rather than NaN statistics.
  net->train();
  CHECK_THAT(error_of([&] { net->forward(x.narrow(0, 0, 1)); }),
             Catch::Matchers::Contains("batch_size: BatchNorm needs more than 1 value per channel when training"));
  // Gradients reach the shared weights through every active slice only.
  net->train();
  spec::Arch small = families::min_arch(s);
  families::edit<families::mlp::Choices>(small).layers[0].width = 6;
  net->set_active(small);
  net->zero_grad();
  net->forward(x).sum().backward();
  for (const auto& p : net->named_parameters()) {
    if (p.key() != "layer0_fc.weight") continue;
    CHECK(p.value().grad().narrow(0, 0, 6).abs().sum().item<double>() > 0);
    CHECK(p.value().grad().narrow(0, 6, 2).abs().sum().item<double>() == 0);
  }
}

TEST_CASE("the shared decision encoding covers mlp spaces", "[mlp]") {
  auto s = tiny_mlp();
  search::ArchEncoding enc(s);
  CHECK(enc.family() == "mlp");
  // resolution, depth, and width + act for each of the 2 layer slots.
  REQUIRE(enc.size() == 6);
  CHECK(enc.decisions()[3].name == "layer0.act");
  CHECK(enc.decisions()[3].labels == std::vector<std::string>{"relu", "gelu"});
  Rng rng(9);
  std::set<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    search::Genotype g = enc.random(rng);
    spec::Arch a = enc.decode(g);
    families::validate_arch(a, s, "decoded");
    CHECK(enc.encode(a) == g);
    CHECK(enc.from_json(enc.to_json(g), "j") == g);
    CHECK(enc.key(g) == spec::arch_hash(a));
    keys.insert(enc.key(g));
    // A layer beyond the depth is inactive.
    CHECK(enc.active(g, 4) == (families::mlp::choices_of(a).layers.size() == 2));
  }
  CHECK(keys.size() == 20);
  // Activations are unordered: every other one is a neighbour, and coarse grids hold the first.
  CHECK_FALSE(enc.decisions()[3].ordered);
  CHECK(enc.decisions()[2].ordered);  // layer0.width
  auto f = families::load_search_space(test::src("configs/spaces/fmnist-mlp.yaml"));
  search::ArchEncoding fe(f);
  search::Genotype g = fe.encode(families::max_arch(f));  // relu everywhere
  std::set<std::string> acts;
  for (const auto& n : fe.neighbours(g)) acts.insert(families::mlp::choices_of(fe.decode(n)).layers[0].act);
  CHECK(acts == std::set<std::string>{"relu", "gelu", "swish", "tanh"});  // relu: other decisions moved
  std::set<std::string> mutated;
  for (int i = 0; i < 200; ++i) mutated.insert(families::mlp::choices_of(fe.decode(fe.mutate(g, rng, 1.0))).layers[0].act);
  CHECK(mutated == std::set<std::string>{"gelu", "swish", "tanh"});  // prob 1: always moves, to any other
}

TEST_CASE("mlp spaces have no latency tables: a clear error", "[mlp]") {
  auto s = tiny_mlp();
  CHECK_THAT(error_of([&] { supernet::space_ops(s, 1, 10); }),
             Catch::Matchers::Contains("space \"tiny-mlp\" (family mlp) has no latency-table operators"));
}

TEST_CASE("the four tools on an mlp space: train, search, slice, benchmark", "[mlp]") {
  std::string d = test::temp_dir("mlp-tools");
  const std::string space = test::src("configs/spaces/fmnist-mlp.yaml");
  auto rt = test::tool("nas-train-supernet",
                       {"--space", space, "--train", test::src("configs/train/fmnist-mlp.yaml"), "--out", d + "/run",
                        "--epochs", "1", "--train-limit", "2560", "--threads", "2", "-q"});
  INFO(rt.err);
  REQUIRE(rt.code == 0);
  const std::string ckpt = d + "/run/supernet.ckpt";
  auto rs =
      test::tool("nas-search", {"--supernet", ckpt, "--strategy", "evolution", "--budget", "10", "--val-images", "500",
                                "--max-params", "300000", "--threads", "2", "-q", "--out", d + "/search.json"});
  INFO(rs.err);
  REQUIRE(rs.code == 0);
  auto sr = families::load_search_result(d + "/search.json");
  CHECK(sr.family == "mlp");
  REQUIRE(sr.best >= 0);
  const auto& best = sr.candidates[static_cast<size_t>(sr.best)];
  CHECK(best.params <= 300000);
  // 20 steps of the sandwich rule put an MLP well clear of chance (0.1; the bar used to be 0.6 and
  // held). At 3x chance the bar is far beyond what a change of rounding moves, while a pipeline that
  // learns nothing (or scores against the wrong labels) stays near 0.1.
  CHECK(best.val_acc > 0.3);
  for (const auto& c : sr.candidates)
    if (c.evaluated && c.feasible) CHECK(c.val_acc <= best.val_acc);  // the best is the most accurate
  CHECK(best.arch.family() == "mlp");
  std::vector<std::string> slice_args = {"--supernet", ckpt, "--arch", d + "/search.json", "--out", d + "/child.ckpt",
                                         "--threads",  "2",  "-q"};
  if (exporter::onnx_available()) slice_args.insert(slice_args.end(), {"--onnx", d + "/child.onnx"});
  auto rl = test::tool("nas-slice", slice_args);
  INFO(rl.err);
  REQUIRE(rl.code == 0);
  if (exporter::onnx_available()) CHECK(test::exists(d + "/child.onnx"));
  auto rb = test::tool("nas-benchmark", {"--model", d + "/child.ckpt", "--threads", "1", "--test-images", "1000",
                                         "--max-time", "1", "-q", "--out", d + "/bench.json"});
  INFO(rb.err);
  REQUIRE(rb.code == 0);
  json bench = json::parse(test::slurp(d + "/bench.json"));
  CHECK(bench["model"]["params"] == best.params);
  // The 1000 images asked for, scored as this test scores them (one image of slack); and, like the
  // search's score of the same child, above 3x chance.
  CHECK(bench["accuracy"]["test_images"] == 1000);
  const double top1 = bench["accuracy"]["top1"].get<double>();
  CHECK(top1 ==
        Approx(test::child_top1(d + "/child.ckpt", data::load_mnist_dir(test::kFmnist, false), 1000)).margin(1.0 / 1000));
  CHECK(top1 > 0.3);
  // No latency table for an mlp space: a usage error, no file left.
  auto rx = test::tool("nas-benchmark", {"--build-lut", "--space", space, "--out", d + "/lut.json"});
  CHECK(rx.code == 2);
  CHECK_THAT(rx.err, Catch::Matchers::Contains("(family mlp) has no latency-table operators"));
  CHECK_FALSE(test::exists(d + "/lut.json"));
}
