#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "catch.h"
#include "core/error.h"
#include "data/idx.h"
#include "data/loader.h"
#include "families/documents.h"
#include "families/sampling.h"
#include "helpers.h"
#include "nn/elastic.h"
#include "nn/precision.h"
#include "search/estimators.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

using namespace nas;
using nlohmann::json;

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
  auto space = families::load_search_space(test::test_data("tiny-space.yaml"));
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
  auto space = families::load_search_space(test::test_data("tiny-space.yaml"));
  auto t = tiny_train();
  t.data.train_limit = 320;  // 5 steps per epoch at batch 64
  t.epochs = 2;
  t.checkpoint_every_steps = 100;
  t.sort_channels_every_epochs = 1;  // sorted at step 5, before the interrupted run stops at 7
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

namespace {
struct Fixture {
  spec::SearchSpace space = families::load_search_space(test::test_data("tiny-space.yaml"));
  data::ImageSet set = data::load_mnist_dir(test::kFmnist, false);
  data::Batch batch;
  Fixture() {
    data::LoaderOptions o;
    o.norm = {{0.286}, {0.353}};
    batch = data::make_batch(set, data::iota_indices(set.n, 48), o, 0);
  }
  // One step from a fresh, seeded supernet; returns the losses and the updated parameters.
  std::pair<train::StepLosses, std::vector<torch::Tensor>> step(const spec::TrainSpec& t, const spec::Arch* fixed = nullptr) {
    torch::manual_seed(0);
    supernet::Supernet net(space, 1, 10);
    net->init_last_bn_gamma(t.zero_init_last_bn);
    auto opt = train::make_optimizer(net, t);
    auto l = train::sandwich_step(net, *opt, batch, t, 3, torch::kCPU, fixed);
    std::vector<torch::Tensor> p;
    for (const auto& x : net->parameters()) p.push_back(x.clone());
    return {l, p};
  }
};
bool all_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, double rtol = 1e-5,
               double atol = 1e-7) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::allclose(a[i], b[i], rtol, atol)) return false;
  return true;
}
}  // namespace

TEST_CASE("recipe switches: dropout and drop-connect touch the max child only", "[train]") {
  Fixture f;
  spec::TrainSpec t;
  t.distillation = false;  // children learn from labels, so the max child's noise cannot reach them
  t.dropout = 0;
  t.drop_connect = 0;
  auto base = f.step(t);
  t.dropout = 0.5;
  auto drop = f.step(t);
  CHECK(drop.first.max != base.first.max);
  CHECK(drop.first.min == base.first.min);
  CHECK(drop.first.random == base.first.random);
  t.dropout = 0;
  t.zero_init_last_bn = false;  // a zero-initialised residual branch is zero: dropping it changes nothing
  auto base1 = f.step(t);
  t.drop_connect = 0.5;
  auto dc = f.step(t);
  CHECK(dc.first.max != base1.first.max);
  CHECK(dc.first.min == base1.first.min);
  // After the step, nothing random is left on: two train-mode forwards agree.
  torch::manual_seed(0);
  supernet::Supernet net(f.space, 1, 10);
  spec::TrainSpec t2;
  t2.dropout = 0.5;
  t2.drop_connect = 0.5;
  auto opt = train::make_optimizer(net, t2);
  train::sandwich_step(net, *opt, f.batch, t2, 0);
  net->train();
  torch::NoGradGuard g;
  torch::Tensor x = supernet::resize_input(f.batch.x, net->active().resolution);
  CHECK(torch::equal(net->forward(x), net->forward(x)));
}

TEST_CASE("recipe switches: zero-init, KL vs soft cross-entropy, uniform sampling, RMSProp, schedules", "[train]") {
  Fixture f;
  {
    torch::manual_seed(0);
    supernet::Supernet net(f.space, 1, 10);
    int residual = 0;
    for (bool zero : {true, false}) {
      net->init_last_bn_gamma(zero);
      for (const auto& p : net->named_parameters()) {
        if (p.key().find("_block1.project_bn.weight") == std::string::npos) continue;  // second blocks are residual
        ++residual;
        CHECK(p.value().abs().sum().item<double>() == (zero ? 0.0 : static_cast<double>(p.value().numel())));
      }
    }
    CHECK(residual == 6);  // 3 stages x 2 settings
  }
  spec::TrainSpec t;
  t.dropout = 0;
  auto soft = f.step(t);
  t.distill_loss = "kl";
  auto kl = f.step(t);
  CHECK(kl.first.max == soft.first.max);
  CHECK(kl.first.min < soft.first.min);  // KL = soft CE minus the teacher's entropy
  CHECK(all_close(kl.second, soft.second, 1e-4, 1e-6));  // same gradients, same update

  t.distill_loss = "soft_ce";
  t.sampling = "uniform";
  auto uni = f.step(t);
  CHECK(uni.first.max == uni.first.min);  // one child per step
  CHECK_FALSE(all_close(uni.second, soft.second));

  t.sampling = "sandwich";
  t.optimizer = "rmsprop";
  t.nesterov = false;
  t.lr = 0.01;
  {
    torch::manual_seed(0);
    supernet::Supernet net(f.space, 1, 10);
    auto opt = train::make_optimizer(net, t);
    CHECK(dynamic_cast<torch::optim::RMSprop*>(opt.get()) != nullptr);
    auto first = train::sandwich_step(net, *opt, f.batch, t, 0);
    train::StepLosses last;
    for (int s = 1; s < 10; ++s) last = train::sandwich_step(net, *opt, f.batch, t, s);
    CHECK(last.max < first.max);
  }

  spec::TrainSpec e;
  e.schedule = "exponential";
  e.lr = 0.1;
  e.warmup_epochs = 1;
  e.decay_rate = 0.5;
  e.decay_epochs = 2;
  e.final_lr_fraction = 0.2;
  CHECK(train::lr_at(e, 4, 1000, 10) == Approx(0.05));    // warm-up: 5 of 10 steps
  CHECK(train::lr_at(e, 10, 1000, 10) == Approx(0.1));    // decay starts
  CHECK(train::lr_at(e, 30, 1000, 10) == Approx(0.05));   // 2 epochs later: halved
  CHECK(train::lr_at(e, 40, 1000, 10) == Approx(0.1 * std::pow(0.5, 1.5)));
  CHECK(train::lr_at(e, 500, 1000, 10) == Approx(0.02));  // held at the floor
}

TEST_CASE("from-scratch mode trains one arch and writes a child checkpoint", "[train]") {
  Fixture f;
  spec::TrainSpec t;
  t.dropout = 0;
  auto a = families::min_arch(f.space);
  auto fixed = f.step(t, &a);
  CHECK(fixed.first.max == fixed.first.min);
  auto t2 = tiny_train();
  t2.data.train_limit = 256;
  t2.epochs = 1;
  std::string dir = test::temp_dir("scratch");
  train::TrainOptions o;
  o.out_dir = dir;
  o.fixed_arch = a;
  auto s = train::train_supernet(f.space, t2, o);
  CHECK(s.child == dir + "/child.ckpt");
  auto child = supernet::load_child(s.child);
  CHECK(*child.meta.arch == a);
  auto meta = supernet::read_checkpoint_meta(dir + "/supernet.ckpt");
  REQUIRE(meta.arch.has_value());
  CHECK(*meta.arch == a);
}

TEST_CASE("bf16 precision: the autocast scope casts convolutions to bfloat16 inside it only", "[train]") {
  // The training path under bf16 runs in the [cuda] tests: on the CPU, LibTorch 1.13 lacks bf16
  // kernels for some backward ops (hardtanh), so the tools accept bf16 only with --device cuda.
  torch::manual_seed(11);
  torch::Tensor x = torch::randn({2, 3, 8, 8}), w = torch::randn({4, 3, 3, 3});
  {
    nn::AutocastScope bf16(false, nn::Precision::kBF16);
    CHECK(torch::conv2d(x, w).scalar_type() == torch::kBFloat16);
    {
      nn::AutocastScope fp32(false, nn::Precision::kFP32);  // does nothing: the outer scope holds
      CHECK(torch::conv2d(x, w).scalar_type() == torch::kBFloat16);
    }
    CHECK(torch::conv2d(x, w).scalar_type() == torch::kBFloat16);
  }
  CHECK(torch::conv2d(x, w).scalar_type() == torch::kFloat);
  CHECK(nn::parse_precision("bf16") == nn::Precision::kBF16);
  CHECK(nn::precision_name(nn::Precision::kBF16) == "bf16");
  CHECK_THROWS_AS(nn::parse_precision("fp16"), UsageError);
}

TEST_CASE("lower fidelity: short in-memory training of one arch, per-epoch curve, extrapolation", "[train]") {
  // The extrapolation recovers a curve of its own family.
  std::vector<double> curve;
  for (int e = 1; e <= 4; ++e) curve.push_back(0.9 - 0.3 * std::pow(e, -0.8));
  CHECK(search::extrapolate_curve(curve, 20) == Approx(0.9 - 0.3 * std::pow(20, -0.8)).margin(2e-3));
  CHECK(search::extrapolate_curve({0.5, 0.6}, 20) == 0.6);  // two points choose no shape

  auto space = families::load_search_space(test::test_data("tiny-space.yaml"));
  auto t = tiny_train();
  auto shared = std::make_shared<const train::TrainData>(train::load_train_data(t));
  const train::TrainData& d = *shared;
  auto val = data::seeded_subset(d.split.val, 300, 1);
  train::CurveOptions o;
  o.epochs = 2;
  o.train_images = 640;
  auto arch = families::min_arch(space);
  auto c1 = train::train_arch_curve(space, t, d, arch, val, o);
  REQUIRE(c1.size() == 2);
  // 20 steps: how far above chance is up to the BLAS kernel's rounding, so no accuracy bar. Each
  // figure is a count of the 300 validation images.
  for (double acc : c1) {
    CHECK((acc >= 0 && acc <= 1));
    CHECK(acc * 300 == Approx(std::round(acc * 300)).margin(1e-6));
  }
  CHECK(train::train_arch_curve(space, t, d, arch, val, o) == c1);  // deterministic
  o.resolution = 16;   // lower resolution than any in the space
  auto c2 = train::train_arch_curve(space, t, d, arch, val, o);
  CHECK(c2.size() == 2);
  CHECK(c2 != c1);

  // Learning-curve estimator: the first child trains to the end; with a margin that makes any
  // later child look hopeless, the next one is stopped after the observed epochs.
  train::CurveOptions co;
  co.epochs = 4;
  co.train_images = 256;
  search::CurveEstimator est(space, t, shared, val, co, 3, -1.0);
  auto s1 = est.score(arch);
  CHECK(s1.detail == "4 epochs");
  auto s2 = est.score(families::max_arch(space));
  CHECK(s2.detail == "stopped after 3 of 4 epochs; extrapolated");
  CHECK(est.stopped_early() == 1);
  CHECK(s2.acc >= 0);
  CHECK(s2.acc <= 1);
  search::LowFidelityEstimator lf(space, t, shared, val, o);
  CHECK(lf.score(arch).acc == c2.back());
  CHECK_THROWS_AS(search::CurveEstimator(space, t, shared, val, co, 4, 0.0), UsageError);
}

namespace {
// A supernet, its optimizer and the parameters and buffers after `steps` sandwich steps on one batch.
struct StepRun {
  std::vector<torch::Tensor> params, buffers;
  std::vector<double> losses;
};
StepRun run_steps(const spec::SearchSpace& space, const spec::TrainSpec& t, const data::Batch& batch, int steps,
                  train::WorkerPool* workers) {
  torch::manual_seed(0);
  supernet::Supernet net(space, 1, 10);
  auto opt = train::make_optimizer(net, t);
  StepRun r;
  for (int s = 0; s < steps; ++s) {
    auto l = train::sandwich_step(net, *opt, batch, t, s, torch::kCPU, nullptr, nullptr, workers);
    r.losses.insert(r.losses.end(), {l.max, l.min, l.random});
  }
  for (const auto& p : net->parameters()) r.params.push_back(p.detach().clone());
  for (const auto& b : net->buffers()) r.buffers.push_back(b.clone());
  return r;
}
bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}
double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}
}  // namespace

TEST_CASE("workers: shards of the batch at once give one worker's step; the same bits at a given worker count",
          "[train]") {
  Fixture f;
  auto t = tiny_train();
  t.random_children = 2;  // four children a step
  t.dropout = 0.2;        // masks drawn for the whole batch, whatever the shards
  t.drop_connect = 0.2;
  train::ThreadsScope one(1);
  StepRun serial = run_steps(f.space, t, f.batch, 2, nullptr);
  for (int w : {2, 3}) {
    INFO(w << " workers");
    train::WorkerPool pool(w, 1);
    StepRun par = run_steps(f.space, t, f.batch, 2, &pool);
    // BN over the shards together, losses weighted by the shards' rows: the same steps to float
    // rounding (sums in another order; about 1e-5 after two steps).
    INFO("largest |difference|: parameters " << max_abs_diff(par.params, serial.params) << ", buffers "
                                              << max_abs_diff(par.buffers, serial.buffers));
    CHECK(all_close(par.params, serial.params, 1e-3, 1e-3));
    CHECK(all_close(par.buffers, serial.buffers, 1e-3, 1e-3));
    REQUIRE(par.losses.size() == serial.losses.size());
    for (size_t i = 0; i < par.losses.size(); ++i) CHECK(par.losses[i] == Approx(serial.losses[i]).epsilon(1e-4));
    // Deterministic at a given worker count (what --resume relies on): the same bits again.
    StepRun again = run_steps(f.space, t, f.batch, 2, &pool);
    CHECK(again.losses == par.losses);
    CHECK(all_equal(again.params, par.params));
    CHECK(all_equal(again.buffers, par.buffers));
  }
  // A different seed for the masks would not be close: the comparison above can fail.
  auto t2 = t;
  t2.seed = 1;
  StepRun other = run_steps(f.space, t2, f.batch, 2, nullptr);
  CHECK_FALSE(all_close(other.params, serial.params, 1e-3, 1e-3));
  // One worker on 2 LibTorch threads (the default before workers): the same step to float rounding.
  StepRun one_step = run_steps(f.space, t, f.batch, 1, nullptr);
  StepRun two_threads = [&] {
    train::ThreadsScope two(2);
    return run_steps(f.space, t, f.batch, 1, nullptr);
  }();
  INFO("2 threads: largest |difference|: parameters " << max_abs_diff(two_threads.params, one_step.params)
                                                      << ", buffers " << max_abs_diff(two_threads.buffers, one_step.buffers));
  CHECK(all_close(two_threads.params, one_step.params, 1e-3, 1e-3));
  CHECK(all_close(two_threads.buffers, one_step.buffers, 1e-3, 1e-3));
}

TEST_CASE("workers: each runs LibTorch on its own thread count; errors reach the caller without a hang",
          "[train]") {
  train::ThreadsScope two(2);
  train::WorkerPool pool(2, 1);
  CHECK(at::get_num_threads() == 2);  // the caller's count is left alone
  std::mutex mu;
  std::vector<int> kernel_threads;
  std::set<std::thread::id> ran_on;
  std::vector<std::function<void()>> tasks(6, [&] {
    std::lock_guard<std::mutex> lock(mu);
    kernel_threads.push_back(at::get_num_threads());
    ran_on.insert(std::this_thread::get_id());
  });
  pool.run(tasks);
  CHECK(kernel_threads == std::vector<int>(6, 1));
  CHECK(ran_on.count(std::this_thread::get_id()) == 0);
  // The lowest-index error is rethrown after every task has run; the pool is usable afterwards.
  std::atomic<int> count{0};
  std::vector<std::function<void()>> failing = {
      [&] { ++count; throw SpecError("first"); }, [&] { ++count; }, [&] { ++count; throw IoError("third"); }};
  CHECK_THROWS_WITH(pool.run(failing), "first");
  CHECK(count == 3);
  pool.run(tasks);
  CHECK(kernel_threads.size() == 12);
  // A shard that fails after its forward passes (a label out of range in its rows) makes the other
  // shard, waiting for it at a BN layer, fail too instead of waiting forever.
  Fixture f;
  auto t = tiny_train();
  torch::manual_seed(0);
  supernet::Supernet net(f.space, 1, 10);
  auto opt = train::make_optimizer(net, t);
  data::Batch bad = f.batch;
  bad.y = bad.y.clone();
  bad.y[0] = 99;
  CHECK_THROWS(train::sandwich_step(net, *opt, bad, t, 0, torch::kCPU, nullptr, nullptr, &pool));
}

TEST_CASE("synchronized BN over shards of unequal size is batch norm over their concatenation", "[train]") {
  // Three members of 5, 9 and 2 images, channel means far from the running mean (the shift K), one
  // thread each; against LibTorch's batch norm on all 16 images.
  torch::manual_seed(3);
  const std::vector<int64_t> sizes{5, 9, 2};
  torch::Tensor x = torch::randn({16, 6, 4, 4}) * 2 + 40;
  torch::Tensor w = torch::randn(x.sizes());  // the loss: sum(y * w)
  nn::DynamicBatchNorm2d plain(6);
  {
    torch::NoGradGuard ng;
    plain->weight.uniform_(0.5, 1.5);
    plain->bias.uniform_(-0.5, 0.5);
  }
  torch::Tensor xa = x.clone().requires_grad_(true);
  torch::Tensor ya = plain->forward(xa);
  (ya * w).sum().backward();
  train::ShardGroup group(3);
  train::WorkerPool pool(3, 1);
  std::vector<torch::Tensor> ys(3), dxs(3), dws(3), dbs(3);
  nn::DynamicBatchNorm2d synced(6);
  std::vector<nn::RunningStatsLog> logs(3);
  {
    torch::NoGradGuard ng;
    synced->weight.copy_(plain->weight);
    synced->bias.copy_(plain->bias);
  }
  std::vector<std::function<void()>> tasks;
  for (int m = 0; m < 3; ++m)
    tasks.emplace_back([&, m] {
      const int64_t first = m == 0 ? 0 : m == 1 ? 5 : 14;
      nn::set_batchnorm_sync([&group, m](const torch::Tensor& v) { return group.sum(v, m); });
      nn::RunningStatsScope record(&logs[static_cast<size_t>(m)]);
      torch::Tensor xm = x.narrow(0, first, sizes[static_cast<size_t>(m)]).clone().requires_grad_(true);
      torch::Tensor y = synced->forward(xm);
      auto g = torch::autograd::grad({(y * w.narrow(0, first, xm.size(0))).sum()}, {xm, synced->weight, synced->bias});
      ys[static_cast<size_t>(m)] = y.detach();
      dxs[static_cast<size_t>(m)] = g[0];
      dws[static_cast<size_t>(m)] = g[1];
      dbs[static_cast<size_t>(m)] = g[2];
      nn::set_batchnorm_sync({});
    });
  pool.run(tasks);
  CHECK(torch::allclose(torch::cat(ys), ya.detach(), 1e-4, 1e-4));
  CHECK(torch::allclose(torch::cat(dxs), xa.grad(), 1e-4, 1e-5));
  CHECK(torch::allclose(dws[0] + dws[1] + dws[2], plain->weight.grad(), 1e-4, 1e-4));
  CHECK(torch::allclose(dbs[0] + dbs[1] + dbs[2], plain->bias.grad(), 1e-4, 1e-4));
  // Each member logged the group's statistics; applied, they are batch norm's running statistics.
  logs[0].apply();
  CHECK(torch::allclose(synced->running_mean, plain->running_mean, 1e-5, 1e-5));
  CHECK(torch::allclose(synced->running_var, plain->running_var, 1e-4, 1e-4));
  // A CUDA graph's backward runs on another thread than its forward: the forward's sum is used.
  nn::DynamicBatchNorm2d one(6);
  int calls = 0;
  nn::set_batchnorm_sync([&](const torch::Tensor& v) {
    ++calls;
    return v.clone();
  });
  torch::Tensor xb = x.clone().requires_grad_(true);
  torch::Tensor loss = (one->forward(xb) * w).sum();  // the sum stays set on this thread meanwhile
  std::string error;
  std::thread([&] {
    try {
      nn::set_batchnorm_sync({});  // this thread has none
      loss.backward();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }).join();
  nn::set_batchnorm_sync({});
  CHECK(error.empty());
  CHECK(calls == 2);
  REQUIRE(xb.grad().defined());
}

TEST_CASE("workers: a step with a non-finite loss in skip mode changes no weight and no BN statistic", "[train]") {
  Fixture f;
  auto t = tiny_train();
  t.on_nonfinite_loss = "skip";
  train::ThreadsScope one(1);
  train::WorkerPool pool(2, 1);
  torch::manual_seed(0);
  supernet::Supernet net(f.space, 1, 10);
  auto opt = train::make_optimizer(net, t);
  train::sandwich_step(net, *opt, f.batch, t, 0, torch::kCPU, nullptr, nullptr, &pool);  // momentum
  std::vector<torch::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.detach().clone());
  for (const auto& b : net->buffers()) before.push_back(b.clone());
  data::Batch bad = f.batch;
  bad.x = bad.x.clone();
  bad.x[0] = std::numeric_limits<float>::quiet_NaN();
  auto l = train::sandwich_step(net, *opt, bad, t, 1, torch::kCPU, nullptr, nullptr, &pool);
  CHECK(l.skipped);
  std::vector<torch::Tensor> after;
  for (const auto& p : net->parameters()) after.push_back(p.detach().clone());
  for (const auto& b : net->buffers()) after.push_back(b.clone());
  CHECK(all_equal(before, after));
  // And the next good step does train.
  auto good = train::sandwich_step(net, *opt, f.batch, t, 2, torch::kCPU, nullptr, nullptr, &pool);
  CHECK_FALSE(good.skipped);
  CHECK(std::isfinite(good.max));
}

TEST_CASE("validate_every_epochs: max and min validation accuracy per epoch, training unchanged", "[train]") {
  auto space = families::load_search_space(test::test_data("tiny-space.yaml"));
  auto t = tiny_train();
  t.data.train_limit = 256;  // 4 steps per epoch at batch 64
  t.data.validation_images = 200;
  t.epochs = 2;
  const std::string plain = test::temp_dir("val-off"), curves = test::temp_dir("val-on");
  train::TrainOptions o;
  o.out_dir = plain;
  train::train_supernet(space, t, o);
  t.validate_every_epochs = 1;
  o.out_dir = curves;
  train::train_supernet(space, t, o);
  // One line per epoch, after its last step, with both ends' accuracy in [0, 1].
  std::vector<json> lines;
  std::istringstream in(test::slurp(curves + "/metrics.jsonl"));
  for (std::string l; std::getline(in, l);) {
    auto j = json::parse(l);
    if (j.contains("val_acc_max")) lines.push_back(j);
  }
  REQUIRE(lines.size() == 2);
  for (int e = 0; e < 2; ++e) {
    CHECK(lines[e]["epochs_done"] == e + 1);
    CHECK(lines[e]["step"] == 4 * (e + 1));
    for (const char* k : {"val_acc_max", "val_acc_min"}) {
      CHECK(lines[e][k].get<double>() >= 0.0);
      CHECK(lines[e][k].get<double>() <= 1.0);
    }
  }
  // The evaluation leaves weights and BN statistics as training left them.
  auto a = tensors_of(plain + "/supernet.ckpt", space, t), b = tensors_of(curves + "/supernet.ckpt", space, t);
  for (const auto& kv : a) {
    INFO(kv.first);
    CHECK(torch::equal(kv.second, b[kv.first]));
  }
  // Stopped at the end of epoch 1, before its validation, and resumed: the line is written on
  // resume, once, and the weights are the uninterrupted run's.
  const std::string parts = test::temp_dir("val-parts");
  o.out_dir = parts;
  o.stop_after_steps = 4;
  train::train_supernet(space, t, o);
  std::string m = test::slurp(parts + "/metrics.jsonl");
  CHECK(std::count(m.begin(), m.end(), '\n') == 1);  // epoch 1's validation (losses every 5 steps)
  CHECK(m.find("\"epochs_done\":1,") != std::string::npos);
  test::spit(parts + "/metrics.jsonl", "");  // as if stopped before validating
  const double stopped_at = supernet::read_checkpoint_meta(parts + "/supernet.ckpt").elapsed_s;
  CHECK(stopped_at > 0);
  o.stop_after_steps = 0;
  o.resume = true;
  train::train_supernet(space, t, o);
  o.resume = false;
  m = test::slurp(parts + "/metrics.jsonl");
  CHECK(std::count(m.begin(), m.end(), '\n') == 4);
  CHECK(m.find("\"epochs_done\":1,") != std::string::npos);
  CHECK(m.find("\"epochs_done\":2,") != std::string::npos);
  // elapsed_s counts every sitting: the resumed run's lines continue from the first one's time.
  CHECK(json::parse(m.substr(m.rfind('\n', m.size() - 2) + 1))["elapsed_s"].get<double>() > stopped_at);
  auto c = tensors_of(parts + "/supernet.ckpt", space, t);
  for (const auto& kv : a) {
    INFO(kv.first);
    CHECK(torch::equal(kv.second, c[kv.first]));
  }
  // Without validation images it is refused before training.
  t.data.validation_images = 0;
  o.out_dir = test::temp_dir("val-none");
  CHECK_THAT(test::error_of([&] { train::train_supernet(space, t, o); }),
             Catch::Matchers::Contains("validate_every_epochs: needs validation images"));
}
