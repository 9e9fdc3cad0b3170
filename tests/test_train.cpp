#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "catch.h"
#include "core/error.h"
#include "data/idx.h"
#include "data/loader.h"
#include "helpers.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/checkpoint.h"
#include "supernet/sampling.h"
#include "train/trainer.h"

using namespace nas;

namespace {
spec::TrainSpec tiny_train() {
  auto t = spec::load_train_spec(test::test_data("tiny-train.yaml"));
  t.data.path = test::kFmnist;
  return t;
}

// Every tensor of a checkpoint as name -> tensor; "next." entries are the parameters after one more
// sandwich step from the restored model and optimizer, so they differ when the momentum state does.
std::map<std::string, torch::Tensor> tensors_of(const std::string& path, const spec::SearchSpace& space,
                                                const spec::TrainSpec& t) {
  supernet::Supernet net(space, 1, 10);
  auto opt = train::make_optimizer(net, t);
  supernet::restore_supernet(path, net, opt.get());
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : net->named_parameters()) out["p." + p.key()] = p.value().clone();
  for (const auto& b : net->named_buffers()) out["b." + b.key()] = b.value().clone();
  auto set = data::load_mnist_dir(test::kFmnist, false);
  data::LoaderOptions o;
  o.norm = train::normalization_of(t);
  auto batch = data::make_batch(set, data::iota_indices(set.n, 32), o, 0);
  train::sandwich_step(net, *opt, batch, t, 1000);
  for (const auto& p : net->named_parameters()) out["next." + p.key()] = p.value().clone();
  return out;
}
}  // namespace

TEST_CASE("learning rate: linear warm-up, then cosine to the floor", "[train]") {
  spec::TrainSpec t;
  t.lr = 0.2;
  t.warmup_epochs = 1;
  t.final_lr_fraction = 0.1;
  CHECK(train::lr_at(t, 0, 100, 10) == Approx(0.02));
  CHECK(train::lr_at(t, 9, 100, 10) == Approx(0.2));
  CHECK(train::lr_at(t, 10, 100, 10) == Approx(0.2));
  CHECK(train::lr_at(t, 55, 100, 10) == Approx(0.02 + 0.18 * 0.5));
  CHECK(train::lr_at(t, 100, 100, 10) == Approx(0.02));
}

TEST_CASE("sandwich steps lower the loss on a fixed batch", "[train]") {
  auto space = spec::load_search_space(test::test_data("tiny-space.yaml"));
  auto t = tiny_train();
  t.lr = 0.05;
  t.dropout = 0;
  torch::manual_seed(0);
  supernet::Supernet net(space, 1, 10);
  auto opt = train::make_optimizer(net, t);
  auto set = data::load_mnist_dir(test::kFmnist, false);
  data::LoaderOptions o;
  o.norm = train::normalization_of(t);
  auto batch = data::make_batch(set, data::iota_indices(set.n, 64), o, 0);
  std::vector<train::StepLosses> l;
  for (int s = 0; s < 12; ++s) l.push_back(train::sandwich_step(net, *opt, batch, t, s));
  INFO("max " << l.front().max << " -> " << l.back().max << ", min " << l.front().min << " -> " << l.back().min);
  CHECK(l.back().max < 0.8 * l.front().max);
  CHECK(l.back().min < l.front().min);
  // Weight decay is only on conv/linear weights: the optimizer has those in group 0, BN and biases in group 1.
  CHECK(static_cast<torch::optim::SGDOptions&>(opt->param_groups()[1].options()).weight_decay() == 0);
  for (const auto& p : opt->param_groups()[1].params()) CHECK(p.dim() == 1);
}

TEST_CASE("resume continues bit for bit: weights and optimizer state equal an uninterrupted run", "[train]") {
  auto space = spec::load_search_space(test::test_data("tiny-space.yaml"));
  auto t = tiny_train();
  t.data.train_limit = 320;  // 5 steps per epoch at batch 64
  t.epochs = 2;
  t.checkpoint_every_steps = 100;
  std::string a = test::temp_dir("full"), b = test::temp_dir("resumed");
  train::TrainOptions o;
  o.out_dir = a;
  auto full = train::train_supernet(space, t, o);
  CHECK(full.steps == 10);
  CHECK(full.total_steps == 10);
  CHECK(std::isfinite(full.last.max));

  o.out_dir = b;
  o.stop_after_steps = 7;  // stops inside the second epoch
  auto part = train::train_supernet(space, t, o);
  CHECK(part.steps == 7);
  CHECK_FALSE(supernet::read_checkpoint_meta(b + "/supernet.ckpt").finished);
  // As if step 9 had been logged before a crash that lost it from the checkpoint (at step 7).
  test::spit(b + "/metrics.jsonl", test::slurp(b + "/metrics.jsonl") + "{\"step\":9}\n");
  o.stop_after_steps = 0;
  o.resume = true;
  auto rest = train::train_supernet(space, t, o);
  CHECK(rest.steps == 10);
  CHECK(supernet::read_checkpoint_meta(b + "/supernet.ckpt").finished);

  auto ta = tensors_of(a + "/supernet.ckpt", space, t);
  auto tb = tensors_of(b + "/supernet.ckpt", space, t);
  REQUIRE(ta.size() == tb.size());
  for (const auto& kv : ta) {
    INFO(kv.first);
    REQUIRE(tb.count(kv.first));
    CHECK(torch::equal(kv.second, tb[kv.first]));
  }
  // Sanity: a checkpoint without optimizer momentum would step differently.
  {
    supernet::Supernet net(space, 1, 10);
    auto opt = train::make_optimizer(net, t);
    supernet::restore_supernet(a + "/supernet.ckpt", net, nullptr);
    auto set = data::load_mnist_dir(test::kFmnist, false);
    data::LoaderOptions lo;
    lo.norm = train::normalization_of(t);
    train::sandwich_step(net, *opt, data::make_batch(set, data::iota_indices(set.n, 32), lo, 0), t, 1000);
    bool differs = false;
    for (const auto& p : net->named_parameters())
      differs = differs || !torch::equal(p.value(), ta["next." + p.key()]);
    CHECK(differs);
  }
  // metrics.jsonl holds each logged step once across both runs (lines past the resumed checkpoint
  // are dropped before appending): steps 5 and 10 (log_every_steps 5).
  std::string m = test::slurp(b + "/metrics.jsonl");
  CHECK(std::count(m.begin(), m.end(), '\n') == 2);
  CHECK(m.find("\"images_per_s\"") != std::string::npos);
  CHECK(m.find("\"step\":9") == std::string::npos);
}
