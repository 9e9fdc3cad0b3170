// Zero-cost proxies: their definitions checked on a network small enough to compute them by hand,
// and the estimator on real images.
#include <cmath>
#include <numeric>

#include "catch.h"
#include "core/error.h"
#include "data/idx.h"
#include "data/loader.h"
#include "families/documents.h"
#include "families/mlp/mlp.h"
#include "families/mlp/modules.h"
#include "families/sampling.h"
#include "helpers.h"
#include "families/modules.h"
#include "search/zero_cost.h"
#include "spec/search_space.h"

using namespace nas;

namespace {
data::Batch fmnist_batch(int64_t n, int resolution) {
  static const data::ImageSet set = data::load_mnist_dir(test::kFmnist, /*train=*/false);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  data::LoaderOptions lo;
  lo.prefetch = 0;
  lo.norm = {{0.286}, {0.353}};
  data::Batch b = data::make_batch(set, idx, lo, 0);
  b.x = supernet::resize_input(b.x, resolution);
  return b;
}

// One hidden ReLU layer of 6 units on 4x4 inputs.
spec::Arch one_layer() {
  spec::Arch a;
  a.space = "tiny-mlp";
  a.resolution = 4;
  auto c = std::make_shared<families::mlp::Choices>();
  c->layers = {{6, "relu"}};
  a.choices = c;
  return a;
}
}  // namespace

TEST_CASE("synflow and nwot as defined, on a one-layer network computed by hand", "[zero_cost]") {
  auto space = families::load_search_space(test::test_data("tiny-mlp.yaml"));
  data::Batch b = fmnist_batch(16, 4);
  torch::manual_seed(1);
  families::ChildNet net(space, one_layer(), 1, 10);
  // synflow: with absolute weights, BN as the identity and an input of ones, the output sums to
  // R = 1'|W2||W1|1 (+ the classifier's |bias|), and each weight layer's sum of |w * dR/dw| is
  // R without the bias: 2 (1'|W2||W1|1).
  auto& layers = *net->modules_as<families::mlp::ChildModulesImpl>();
  torch::Tensor w1 = layers.fc[0]->weight.detach().abs().to(torch::kFloat64);
  torch::Tensor w2 = layers.classifier->weight.detach().abs().to(torch::kFloat64);
  const double r = w2.matmul(w1).sum().item<double>();
  CHECK(search::zero_cost_proxy("synflow", net, b.x, b.y) == Approx(2 * r).epsilon(1e-9));
  // nwot: the units are the inputs of the activation, BN on batch statistics; K counts, for each
  // pair of images, the units on the same side of zero.
  torch::manual_seed(1);
  families::ChildNet fresh(space, one_layer(), 1, 10);
  torch::Tensor pre;
  {
    torch::NoGradGuard g;
    fresh->train();
    auto& fresh_layers = *fresh->modules_as<families::mlp::ChildModulesImpl>();
    pre = fresh_layers.fc_bn[0](fresh_layers.fc[0](b.x.flatten(1))).to(torch::kFloat64);
  }
  torch::Tensor c = (pre > 0).to(torch::kFloat64);
  torch::Tensor k = c.mm(c.t()) + (1 - c).mm((1 - c).t());
  const double expected = std::get<1>(torch::linalg::slogdet(k)).item<double>();
  CHECK(search::zero_cost_proxy("nwot", fresh, b.x, b.y) == Approx(expected).epsilon(1e-9));
  CHECK_THROWS_AS(search::zero_cost_proxy("flops", fresh, b.x, b.y), UsageError);
}

TEST_CASE("the zero-cost estimator: every proxy finite, repeatable, and bigger for the bigger child", "[zero_cost]") {
  auto space = families::load_search_space(test::test_data("tiny-space.yaml"));
  data::Batch b = fmnist_batch(24, 28);
  const spec::Arch big = families::max_arch(space), small = families::min_arch(space);
  for (const auto& proxy : search::proxy_names()) {
    INFO(proxy);
    search::ZeroCostOptions o;
    o.proxy = proxy;
    o.seed = 3;
    search::ZeroCostEstimator est(space, 1, 10, nullptr, b, o);
    CHECK(est.name() == "zero_cost_" + proxy);
    const double a = est.proxy(big);
    CHECK(std::isfinite(a));
    CHECK(est.proxy(big) == a);  // the same initial weights and batch
    const double s = est.proxy(small);
    CHECK(std::isfinite(s));
    CHECK(s != a);
    if (proxy == "synflow" || proxy == "nwot") CHECK(a > s);  // more weights, more units
    if (proxy == "grad-norm" || proxy == "snip") CHECK(s > 0);
    auto score = est.score(big);
    CHECK(score.error.empty());
    CHECK(score.acc == a);
    CHECK(score.detail == proxy + " on init weights");
  }
  // A batch of one image repeated: every unit has the same sign for every image, nwot's K is
  // singular (log det -inf): a failed evaluation with a finite score, never an infinity in JSON.
  data::Batch same = b;
  same.x = b.x.narrow(0, 0, 1).expand_as(b.x).contiguous();
  search::ZeroCostOptions nwot;
  nwot.proxy = "nwot";
  search::ZeroCostEstimator flat(space, 1, 10, nullptr, same, nwot);
  auto failed = flat.score(big);
  CHECK_THAT(failed.error, Catch::Matchers::Contains("nwot: not finite"));
  CHECK(failed.acc == 0);
  search::ZeroCostOptions bad;
  bad.weights = "inherited";
  CHECK_THROWS_AS(search::ZeroCostEstimator(space, 1, 10, nullptr, b, bad), UsageError);
}
