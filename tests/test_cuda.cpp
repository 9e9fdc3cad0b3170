// The CUDA path: the supernet, the sandwich step and every tool on a GPU, against the CPU. Each test
// returns at once (with a warning) where LibTorch sees no CUDA device.
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catch.h"
#include "core/rng.h"
#include "data/idx.h"
#include "eval/evaluate.h"
#include "families/documents.h"
#include "families/sampling.h"
#include "helpers.h"
#include "nn/precision.h"
#include "spec/bench_result.h"
#include "spec/search_space.h"
#include "supernet/supernet.h"
#include "supernet_helpers.h"
#include "train/trainer.h"

using namespace nas;
using nlohmann::json;

TEST_CASE("CUDA: supernet and sandwich step run on the GPU and agree with the CPU", "[cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  torch::manual_seed(4);
  auto space = families::load_search_space(test::test_data("tiny-space.yaml"));
  supernet::Supernet net(space, 1, 10);
  test::randomize_bn(net);
  net->eval();
  Rng rng(5);
  auto a = families::random_arch(space, rng);
  net->set_active(a);
  torch::Tensor x = torch::randn({8, 1, a.resolution, a.resolution});
  torch::Tensor cpu;
  {
    torch::NoGradGuard g;
    cpu = net->forward(x);
    net->to(torch::kCUDA);
    torch::Tensor gpu = net->forward(x.to(torch::kCUDA)).cpu();
    CHECK(torch::allclose(cpu, gpu, 1e-3, 1e-4));
  }
  spec::TrainSpec t;
  t.random_children = 2;
  auto opt = train::make_optimizer(net, t);
  auto set = data::load_mnist_dir(test::kFmnist, false);
  data::LoaderOptions o;
  o.norm = train::normalization_of(t);
  auto batch = data::make_batch(set, data::iota_indices(set.n, 64), o, 0);
  auto l0 = train::sandwich_step(net, *opt, batch, t, 0, torch::kCUDA);
  train::StepLosses l;
  for (int s = 1; s < 10; ++s) l = train::sandwich_step(net, *opt, batch, t, s, torch::kCUDA);
  CHECK(std::isfinite(l.max));
  CHECK(l.max < l0.max);
  // Pinned batches for asynchronous copies.
  o.pin_memory = true;
  o.batch_size = 16;
  data::BatchLoader loader(set, data::iota_indices(set.n, 64), o);
  auto pinned = loader.next();
  REQUIRE(pinned);
  CHECK(pinned->x.is_pinned());
  CHECK(pinned->y.is_pinned());
  // bf16 autocast: the same steps still learn.
  struct Restore {
    ~Restore() { nn::set_default_precision(nn::Precision::kFP32); }
  } restore;
  nn::set_default_precision(nn::Precision::kBF16);
  auto b0 = train::sandwich_step(net, *opt, batch, t, 20, torch::kCUDA);
  train::StepLosses b;
  for (int s = 21; s < 30; ++s) b = train::sandwich_step(net, *opt, batch, t, s, torch::kCUDA);
  CHECK(std::isfinite(b.max));
  CHECK(b.max <= b0.max * 1.05);
}

TEST_CASE("--device cuda: every tool runs on the GPU, at fp32 and with bf16 autocast", "[cuda]") {
  if (!test::cuda_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  std::string d = test::temp_dir("cuda");
  for (std::string prec : {"fp32", "bf16"}) {
    const std::vector<std::string> flags = {"--device", "cuda", "--precision", prec};
    auto r = test::tool("nas-train-supernet",
                        {"--space", test::test_data("tiny-space.yaml"), "--train", test::test_data("tiny-train.yaml"),
                         "--out", d + "/" + prec, "--train-limit", "1280", "--epochs", "1"},
                        flags);
    INFO(r.err);
    REQUIRE(r.code == 0);
    std::string ckpt = d + "/" + prec + "/supernet.ckpt";
    auto rs = test::tool(
        "nas-search",
        {"--supernet", ckpt, "--budget", "3", "--val-images", "300", "--out", d + "/" + prec + "/search.json"}, flags);
    INFO(rs.err);
    REQUIRE(rs.code == 0);
    auto rc = test::tool(
        "nas-slice",
        {"--supernet", ckpt, "--arch", d + "/" + prec + "/search.json", "--out", d + "/" + prec + "/child.ckpt"},
        flags);
    INFO(rc.err);
    REQUIRE(rc.code == 0);
    auto rb = test::tool(
        "nas-benchmark",
        {"--model", d + "/" + prec + "/child.ckpt", "--reps", "5", "--min-time", "0", "--test-images", "1000"}, flags);
    INFO(rb.err);
    REQUIRE(rb.code == 0);
    auto b = families::bench_result_from_json(json::parse(rb.out), "stdout");
    CHECK(b.context.device == "cuda");
    CHECK(b.context.precision == prec);
    // 20 steps: barely trained, and bf16 (or TF32 convolutions) round differently from any CPU
    // count, so neither an accuracy bar nor a comparison: the 1000 images asked for, a valid score.
    CHECK(b.test_images == 1000);
    CHECK((b.test_acc >= 0 && b.test_acc <= 1));
    CHECK(b.median_ms > 0);
  }
}
