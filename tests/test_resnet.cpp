// The resnet family (issue 22): added through the family interface alone.
#include <torch/torch.h>

#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/idx.h"
#include "export/onnx_export.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/modules.h"
#include "families/resnet/resnet.h"
#include "families/sampling.h"
#include "helpers.h"
#include "nn/elastic.h"
#include "search/encoding.h"
#include "spec/arch.h"
#include "spec/search_result.h"
#include "supernet/checkpoint.h"
#include "supernet/supernet.h"
#include "supernet_helpers.h"

using namespace nas;
using nas::spec::json;

namespace {
spec::SearchSpace tiny_resnet() { return families::load_search_space(test::test_data("tiny-resnet.yaml")); }
}  // namespace

TEST_CASE("resnet spaces and archs: canonical JSON, membership errors, sampling stays in the space", "[resnet]") {
  auto s = families::load_search_space(test::src("configs/spaces/fmnist-resnet.yaml"));
  CHECK(s.family == "resnet");
  CHECK(families::resnet::space_of(s).width_mult == std::vector<int>{65, 80, 100});
  CHECK(spec::to_json(families::search_space_from_json(spec::to_json(s), "again")) == spec::to_json(s));
  json bad = spec::to_json(s);
  bad["width_mult"] = {0, 100};
  CHECK_THAT(test::error_of([&] { families::search_space_from_json(bad, "r.yaml"); }),
             Catch::Matchers::Contains("r.yaml: width_mult"));

  auto t = tiny_resnet();
  spec::Arch max = families::max_arch(t);
  CHECK(families::arch_summary(max) == "r12 w100 [e50,50] [e50,50]");
  CHECK(families::arch_from_json(spec::to_json(max), "a.json") == max);
  spec::Arch b = max;
  families::edit<families::resnet::Choices>(b).stages[1].expand[0] = 30;
  CHECK_THAT(test::error_of([&] { families::validate_arch(b, t, "b.json"); }),
             Catch::Matchers::Contains("b.json: stages[1].expand[0]: expected one of [25, 50]"));
  Rng rng(3);
  std::set<std::string> seen;
  search::ArchEncoding enc(t);
  for (int i = 0; i < 2000; ++i) {
    spec::Arch r = families::random_arch(t, rng);
    families::validate_arch(r, t, "random");
    seen.insert(spec::arch_hash(r));
    spec::Arch m = families::mutate_arch(r, t, rng, 0.3);
    families::validate_arch(m, t, "mutated");
    CHECK(m != r);
    CHECK(enc.decode(enc.encode(r)) == r);
  }
  // 2 resolutions x 2 multipliers x per stage (2 + 4) depth-and-ratio choices.
  CHECK(seen.size() == 2 * 2 * 6 * 6);
}

TEST_CASE("resnet: sliced children compute what the supernet computes, cost counts their parameters", "[resnet]") {
  auto t = tiny_resnet();
  torch::manual_seed(0);
  supernet::Supernet net(t, 1, 10);
  // Non-trivial BN statistics, so that slicing them is checked too.
  net->train();
  for (int i = 0; i < 3; ++i) net->forward_child(torch::randn({8, 1, 12, 12}), families::max_arch(t));
  net->eval();
  Rng rng(5);
  std::vector<spec::Arch> archs = {families::max_arch(t), families::min_arch(t)};
  for (int i = 0; i < 8; ++i) archs.push_back(families::random_arch(t, rng));
  torch::NoGradGuard g;
  for (const auto& a : archs) {
    INFO(families::arch_summary(a));
    torch::Tensor x = torch::randn({4, 1, a.resolution, a.resolution});
    families::ChildNet child = net->slice(a);
    child->eval();
    CHECK(torch::allclose(child->forward(x), net->forward_child(x, a), 1e-4, 1e-5));
    CHECK(test::numel_of(*child) == net->cost(a).params);
    if (exporter::onnx_available()) CHECK(families::export_onnx(child).size() > 1000);
  }
}

TEST_CASE("copying a state by leading slices: prefixes and centre crops; shapes that do not fit are errors",
          "[resnet]") {
  torch::nn::Conv2d big(torch::nn::Conv2dOptions(4, 6, 5).bias(false));
  torch::nn::Conv2d small(torch::nn::Conv2dOptions(2, 3, 3).bias(false));
  nn::copy_state_by_name(*small, *big, nn::Fit::kLeadingSlice);
  // The first 3 outputs of the first 2 inputs, the kernel's centre 3x3.
  CHECK(torch::equal(small->weight, big->weight.slice(0, 0, 3).slice(1, 0, 2).slice(2, 1, 4).slice(3, 1, 4)));
  CHECK_THAT(test::error_of([&] { nn::copy_state_by_name(*big, *small, nn::Fit::kLeadingSlice); }),
             Catch::Matchers::Contains("slice: weight is [3, 2, 3, 3] in the supernet, [6, 4, 5, 5] in the child"));
  CHECK_THAT(test::error_of([&] { nn::copy_state_by_name(*small, *big); }),  // the same shape only
             Catch::Matchers::Contains("slice: weight is [6, 4, 5, 5] in the supernet, [3, 2, 3, 3] in the child"));
  torch::nn::Linear fc(4, 3);  // another rank
  CHECK_THAT(test::error_of([&] { nn::copy_state_by_name(*fc, *big, nn::Fit::kLeadingSlice); }),
             Catch::Matchers::Contains("slice: weight is [6, 4, 5, 5] in the supernet, [3, 4] in the child"));
  torch::nn::Conv2d biased(torch::nn::Conv2dOptions(2, 3, 3));
  CHECK_THAT(test::error_of([&] { nn::copy_state_by_name(*biased, *big, nn::Fit::kLeadingSlice); }),
             Catch::Matchers::Contains("slice: the supernet has no parameter bias"));
}

TEST_CASE("resnet: analytic peak activation memory agrees with the measured peak of an inference", "[resnet]") {
  auto s = families::load_search_space(test::src("configs/spaces/fmnist-resnet.yaml"));
  Rng rng(8);
  std::vector<spec::Arch> archs = {families::max_arch(s), families::min_arch(s)};
  for (int i = 0; i < 6; ++i) archs.push_back(families::random_arch(s, rng));
  test::check_peak_activations(s, archs);
}

TEST_CASE("the four tools on a resnet space: train, search, slice (ONNX in ONNX Runtime), benchmark", "[resnet]") {
  std::string d = test::temp_dir("resnet-tools");
  const std::string space = test::src("configs/spaces/fmnist-resnet.yaml");
  auto rt =
      test::tool("nas-train-supernet", {"--space", space, "--train", test::src("configs/train/fmnist.yaml"), "--out",
                                        d + "/run", "--epochs", "1", "--train-limit", "5120", "--threads", "2", "-q"});
  INFO(rt.err);
  REQUIRE(rt.code == 0);
  // A bound between the min and the max child's parameters, so that the search has to choose.
  auto s = families::load_search_space(space);
  const int64_t lo = families::arch_cost(s, families::min_arch(s), 1, 10).params;
  const int64_t hi = families::arch_cost(s, families::max_arch(s), 1, 10).params;
  const std::string bound = std::to_string((lo + hi) / 2);
  const std::string ckpt = d + "/run/supernet.ckpt";
  auto rs = test::tool("nas-search", {"--supernet", ckpt, "--strategy", "evolution", "--budget", "8", "--val-images",
                                      "500", "--calib-images", "256", "--max-params", bound, "--threads", "2", "-q",
                                      "--out", d + "/search.json"});
  INFO(rs.err);
  REQUIRE(rs.code == 0);
  auto sr = families::load_search_result(d + "/search.json");
  CHECK(sr.family == "resnet");
  REQUIRE(sr.best >= 0);
  const auto& best = sr.candidates[static_cast<size_t>(sr.best)];
  CHECK(best.arch.family() == "resnet");
  CHECK(best.params <= std::stoll(bound));
  // A nas.search of a family no one has, or whose candidates are of another family: clear errors.
  json doctored = json::parse(test::slurp(d + "/search.json"));
  doctored["family"] = "foo";
  CHECK_THAT(test::error_of([&] { families::search_result_from_json(doctored, "s.json"); }),
             Catch::Matchers::Contains(
                 "s.json: family: expected one of mbconv, mlp, cell, resnet, generic, found string \"foo\""));
  doctored["family"] = "mlp";
  CHECK_THAT(
      test::error_of([&] { families::search_result_from_json(doctored, "s.json"); }),
      Catch::Matchers::Contains(
          "s.json: candidates[0].arch: expected an arch of family mlp (the search's), found one of family resnet"));
  for (const auto& c : sr.candidates)
    if (c.evaluated && c.feasible) CHECK(c.val_acc <= best.val_acc);  // the best is the most accurate
  // Sliced with its ONNX graph; ONNX Runtime computes what the sliced child computes.
  std::vector<std::string> slice_args = {
      "--supernet", ckpt, "--arch", d + "/search.json", "--out", d + "/child.ckpt", "--calib-images", "256",
      "--threads",  "2",  "-q"};
  if (exporter::onnx_available()) slice_args.insert(slice_args.end(), {"--onnx", d + "/child.onnx"});
  auto rl = test::tool("nas-slice", slice_args);
  INFO(rl.err);
  REQUIRE(rl.code == 0);
  auto child = supernet::load_child(d + "/child.ckpt");
  CHECK(spec::arch_hash(*child.meta.arch) == spec::arch_hash(best.arch));
  CHECK(test::numel_of(*child.net) == best.params);
  const std::string modules = test::ort_node_modules();
  if (exporter::onnx_available() && !modules.empty()) {
    child.net->eval();
    test::check_onnx_runtime_agrees(child.net, best.arch.resolution, d + "/child.onnx", modules, d);
  } else {
    WARN("ONNX Runtime check skipped: needs libonnx-dev, node and onnxruntime-node (scripts/setup.sh)");
  }
  auto rb = test::tool("nas-benchmark", {"--model", d + "/child.ckpt", "--threads", "1", "--test-images", "500",
                                         "--max-time", "1", "-q", "--out", d + "/bench.json"});
  INFO(rb.err);
  REQUIRE(rb.code == 0);
  json bench = json::parse(test::slurp(d + "/bench.json"));
  CHECK(bench["model"]["params"] == best.params);
  // The 500 images asked for, scored as this test scores them (one image of slack).
  CHECK(bench["accuracy"]["test_images"] == 500);
  const double top1 = bench["accuracy"]["top1"].get<double>();
  CHECK(top1 ==
        Approx(test::child_top1(d + "/child.ckpt", data::load_mnist_dir(test::kFmnist, false), 500)).margin(1.0 / 500));
  // 40 sandwich steps: measured 0.33 (with OPENBLAS_CORETYPE=Haswell and without; 0.17-0.2 before the
  // blocks' last BN started at zero). At twice chance the bar is far beyond what rounding moves,
  // while a pipeline that learns nothing stays near 0.1.
  CHECK(top1 > 0.2);
  // No latency-table operators in this family: a usage error, no file left.
  auto rx = test::tool("nas-benchmark", {"--build-lut", "--space", space, "--out", d + "/lut.json"});
  CHECK(rx.code == 2);
  CHECK_THAT(rx.err, Catch::Matchers::Contains("has no latency-table operators"));
  CHECK_FALSE(test::exists(d + "/lut.json"));
}

TEST_CASE("resnet children train at another resolution for the low-fidelity estimator; mlp ones cannot", "[resnet]") {
  std::string d = test::temp_dir("resnet-lowfi");
  auto search = [&](const std::string& space, const std::string& out) {
    return test::tool("nas-search", {"--space",
                                     space,
                                     "--train",
                                     test::test_data("tiny-train.yaml"),
                                     "--estimator",
                                     "low-fidelity",
                                     "--lf-epochs",
                                     "1",
                                     "--lf-images",
                                     "128",
                                     "--lf-resolution",
                                     "10",
                                     "--val-images",
                                     "100",
                                     "--strategy",
                                     "random",
                                     "--budget",
                                     "2",
                                     "--threads",
                                     "2",
                                     "-q",
                                     "--out",
                                     d + "/" + out});
  };
  auto r = search(test::test_data("tiny-resnet.yaml"), "resnet.json");  // resolutions 8 and 12: 10 is neither
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto s = families::load_search_result(d + "/resnet.json");
  REQUIRE(s.candidates.size() == 2);
  for (const auto& c : s.candidates) {
    CHECK(c.evaluated);
    CHECK(c.error.empty());
  }
  auto m = search(test::test_data("tiny-mlp.yaml"), "mlp.json");
  CHECK(m.code == 2);
  CHECK_THAT(m.err,
             Catch::Matchers::Contains("--lf-resolution 10: a child of family mlp runs at its space's resolution"));
  CHECK_FALSE(test::exists(d + "/mlp.json"));
}
