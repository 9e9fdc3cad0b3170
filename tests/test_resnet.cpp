// The resnet family (issue 22): added through the family interface alone.
#include <torch/torch.h>

#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/rng.h"
#include "export/onnx_export.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/modules.h"
#include "families/resnet/resnet.h"
#include "families/sampling.h"
#include "helpers.h"
#include "search/encoding.h"
#include "spec/arch.h"
#include "supernet/supernet.h"

using namespace nas;
using nas::spec::json;

namespace {
spec::SearchSpace tiny_resnet() { return families::load_search_space(test::test_data("tiny-resnet.yaml")); }

int64_t numel_of(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
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
    CHECK(numel_of(*child) == net->cost(a).params);
    if (exporter::onnx_available()) CHECK(families::export_onnx(child).size() > 1000);
  }
}
