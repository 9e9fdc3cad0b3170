#include <torch/torch.h>

#include <cmath>

#include "catch.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/idx.h"
#include "eval/evaluate.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/mbconv/mbconv.h"
#include "families/sampling.h"
#include "helpers.h"
#include "nn/precision.h"
#include "spec/search_space.h"
#include "supernet/checkpoint.h"
#include "supernet/supernet.h"
#include "supernet_helpers.h"
#include "train/trainer.h"

using namespace nas;

namespace {
spec::SearchSpace tiny_space() { return families::load_search_space(test::test_data("tiny-space.yaml")); }

const char* kHandSpace = R"(kind: nas.search_space
schema_version: 1
name: hand
family: mbconv
resolution: [8, 16]
stem: {width: [4, 8], kernel: 3, stride: 1}
stages:
  - {depth: [1, 2], width: [8, 16], expand: [1, 2], kernel: [3, 5], stride: 2, se: true}
head: {width: [16, 32]}
)";
}  // namespace

TEST_CASE("a sliced child computes exactly what the supernet computes with its arch active", "[supernet]") {
  torch::manual_seed(0);
  auto space = tiny_space();
  supernet::Supernet net(space, 1, 10);
  test::randomize_bn(net);
  net->eval();
  Rng rng(123);
  std::vector<spec::Arch> archs = {families::max_arch(space), families::min_arch(space)};
  for (int i = 0; i < 20; ++i) archs.push_back(families::random_arch(space, rng));
  torch::NoGradGuard g;
  for (const auto& a : archs) {
    INFO(families::arch_summary(a));
    net->set_active(a);
    auto child = net->slice(a);
    child->eval();
    torch::Tensor x = torch::randn({4, 1, a.resolution, a.resolution});
    torch::Tensor ys = net->forward(x);
    torch::Tensor yc = child->forward(x);
    REQUIRE(ys.sizes() == torch::IntArrayRef({4, 10}));
    CHECK(torch::allclose(ys, yc, 1e-4, 1e-5));
    // The analytic parameter count equals the child's real tensors.
    CHECK(test::numel_of(*child) == net->cost(a).params);
  }
}

TEST_CASE("FLOPs and params of max, min and a hand-picked child match hand counts", "[supernet]") {
  auto space = families::search_space_from_json(spec::parse_document(kHandSpace, "hand.yaml"), "hand.yaml");
  // in_channels 1, 10 classes. MACs per conv = out_h * out_w * out_c * in_c/groups * k * k.
  // Params count conv weights, BN gamma+beta, SE and classifier weights + biases.
  auto max = families::arch_cost(space, families::max_arch(space), 1, 10);
  // max: r16, stem 8, one stage of 2 blocks (e2 k5) width 16, SE, head 32.
  int64_t stem = 16 * 16 * 8 * 1 * 9;
  int64_t b0 = 16 * 16 * 8 * 16 /*expand 8->16 at 16x16*/ + 8 * 8 * 16 * 25 /*dw 5x5 s2*/ + 2 * 16 * 4 /*se 16->4->16*/ +
               8 * 8 * 16 * 16 /*project*/;
  int64_t b1 = 8 * 8 * 16 * 32 + 8 * 8 * 32 * 25 + 2 * 32 * 8 + 8 * 8 * 32 * 16;
  int64_t head = 8 * 8 * 16 * 32 + 32 * 10;
  CHECK(max.macs == stem + b0 + b1 + head);
  CHECK(max.macs == 243648);
  int64_t p_stem = 72 + 16;
  int64_t p_b0 = (128 + 32) + (400 + 32) + (64 + 4 + 64 + 16) + (256 + 32);
  int64_t p_b1 = (512 + 64) + (800 + 64) + (256 + 8 + 256 + 32) + (512 + 32);
  int64_t p_head = (512 + 64) + (320 + 10);
  CHECK(max.params == p_stem + p_b0 + p_b1 + p_head);
  CHECK(max.params == 4558);

  auto min = families::arch_cost(space, families::min_arch(space), 1, 10);
  // min: r8, stem 4, one block (e1 k3) width 8 (the stage has an expand conv, 4->4), head 16.
  CHECK(min.macs == 8 * 8 * 4 * 9 + (8 * 8 * 4 * 4 + 4 * 4 * 4 * 9 + 2 * 4 * 1 + 4 * 4 * 4 * 8) + 4 * 4 * 8 * 16 + 16 * 10);
  CHECK(min.macs == 6632);
  CHECK(min.params == (36 + 8) + ((16 + 8) + (36 + 8) + (4 + 1 + 4 + 4) + (32 + 16)) + (128 + 32) + (160 + 10));
  CHECK(min.params == 503);

  spec::Arch a = families::max_arch(space);
  auto& choices = families::edit<families::mbconv::Choices>(a);
  choices.stem_width = 8;
  choices.stages[0].width = 8;
  choices.stages[0].blocks = {{1, 5}, {2, 3}};
  choices.head_width = 16;
  auto c = families::arch_cost(space, a, 1, 10);
  CHECK(c.macs == 18432 + (16384 + 12800 + 32 + 4096) + (8192 + 9216 + 128 + 8192) + 8192 + 160);
  CHECK(c.macs == 85824);
  CHECK(c.params == 88 + (80 + 216 + 42 + 80) + (160 + 176 + 148 + 144) + 160 + 170);
  CHECK(c.params == 1464);
  CHECK(c.mflops() == Approx(0.085824));
}

TEST_CASE("children share weights: a small child's gradient lands in the weight prefix", "[supernet]") {
  torch::manual_seed(1);
  auto space = tiny_space();
  supernet::Supernet net(space, 1, 10);
  auto a = families::min_arch(space);
  net->set_active(a);
  net->train();
  torch::Tensor x = torch::randn({8, 1, a.resolution, a.resolution});
  net->forward(x).pow(2).mean().backward();
  torch::Tensor g;
  for (const auto& p : net->named_parameters())
    if (p.key() == "stem.weight") g = p.value().grad();
  REQUIRE(g.defined());
  CHECK(g.size(0) == 12);
  CHECK(g.narrow(0, 0, 8).abs().sum().item<double>() > 0);
  CHECK(g.narrow(0, 8, 4).abs().sum().item<double>() == 0);
  // Elastic depth: the unused second block of every stage gets no gradient.
  for (const auto& p : net->named_parameters()) {
    if (p.key().find("_block1.") != std::string::npos) {
      INFO(p.key());
      CHECK((!p.value().grad().defined() || p.value().grad().abs().sum().item<double>() == 0));
    }
  }
}

TEST_CASE("BN recalibration is a cumulative average and repeatable", "[supernet]") {
  torch::manual_seed(2);
  auto space = tiny_space();
  supernet::Supernet net(space, 1, 10);
  auto set = data::load_mnist_dir(test::kFmnist, false);
  auto idx = data::iota_indices(set.n, 300);
  data::Normalization norm{{0.286}, {0.353}};
  auto a = families::min_arch(space);
  net->set_active(a);
  eval::recalibrate_bn(net, set, idx, norm, 100);
  auto stats = [&] {
    for (const auto& b : net->named_buffers())
      if (b.key() == "stem_bn.running_mean") return b.value().clone();
    return torch::Tensor();
  };
  torch::Tensor s1 = stats();
  eval::recalibrate_bn(net, set, idx, norm, 100);
  CHECK(torch::allclose(s1, stats()));  // no memory of the previous calibration
  // Equal to the mean over the three batches of the stem conv's per-channel batch means.
  torch::NoGradGuard g;
  data::LoaderOptions o;
  o.batch_size = 100;
  o.norm = norm;
  torch::Tensor sum = torch::zeros({8});
  for (int b = 0; b < 3; ++b) {
    std::vector<int64_t> part(idx.begin() + b * 100, idx.begin() + (b + 1) * 100);
    auto x = supernet::resize_input(data::make_batch(set, part, o, 0).x, a.resolution);
    torch::Tensor w;
    for (const auto& p : net->named_parameters())
      if (p.key() == "stem.weight") w = p.value().narrow(0, 0, 8);
    sum += torch::conv2d(x, w, {}, 1, 1).mean({0, 2, 3});
  }
  CHECK(torch::allclose(s1.narrow(0, 0, 8), sum / 3, 1e-4, 1e-5));
  CHECK(s1.narrow(0, 8, 4).abs().sum().item<double>() == 0);  // untouched beyond the active width
  // Batches of unequal size are weighted by their images: 200 + 100 equals the 300 at once.
  eval::recalibrate_bn(net, set, idx, norm, 200);
  torch::Tensor uneven = stats();
  eval::recalibrate_bn(net, set, idx, norm, 300);
  CHECK(torch::allclose(uneven, stats(), 1e-4, 1e-5));
}

TEST_CASE("checkpoints: child loads without a supernet; bad files are refused", "[supernet]") {
  torch::manual_seed(3);
  auto space = tiny_space();
  supernet::Supernet net(space, 1, 10);
  test::randomize_bn(net);
  std::string dir = test::temp_dir("ckpt");
  supernet::CheckpointMeta meta;
  meta.space = space;
  meta.step = 7;
  supernet::save_supernet(dir + "/s.ckpt", net, meta, nullptr);
  Rng rng(9);
  auto a = families::random_arch(space, rng);
  net->set_active(a);
  auto child = net->slice(a);
  supernet::save_child(dir + "/c.ckpt", child, meta);
  CHECK(test::count_files(dir) == 2);  // no temporary files left

  auto lc = supernet::load_child(dir + "/c.ckpt");
  CHECK(lc.meta.type == "child");
  CHECK(*lc.meta.arch == a);
  net->eval();
  lc.net->eval();
  torch::NoGradGuard g;
  torch::Tensor x = torch::randn({3, 1, a.resolution, a.resolution});
  CHECK(torch::allclose(net->forward(x), lc.net->forward(x), 1e-4, 1e-5));
  auto ls = supernet::load_supernet(dir + "/s.ckpt");
  CHECK(ls.meta.step == 7);
  ls.net->set_active(a);
  ls.net->eval();
  CHECK(torch::allclose(net->forward(x), ls.net->forward(x)));

  auto ckpt_error = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const CheckpointError& e) {
      CHECK(e.exit_code() == 4);
      return e.what();
    } catch (const IoError& e) {
      CHECK(e.exit_code() == 4);
      return e.what();
    }
    return "";
  };
  CHECK_THAT(ckpt_error([&] { supernet::load_supernet(dir + "/c.ckpt"); }),
             Catch::Matchers::Contains("expected a supernet checkpoint, found a child"));
  CHECK_THAT(ckpt_error([&] { supernet::load_child(dir + "/s.ckpt"); }),
             Catch::Matchers::Contains("expected a child checkpoint, found a supernet"));
  std::string bytes = test::slurp(dir + "/s.ckpt");
  {
    // A format-1 checkpoint as builds before version 2 wrote it: no digests, and none of the train
    // keys version 2 added. It loads, with the defaults for those keys.
    torch::serialize::OutputArchive ar;
    net->save(ar);
    auto m = meta;
    m.type = "supernet";
    auto j = supernet::meta_to_json(m);
    j["format_version"] = 1;
    REQUIRE_FALSE(j.contains("tensors_fnv1a64"));
    for (const char* k : {"sync_bn", "on_nonfinite_loss", "max_skipped_steps"}) REQUIRE(j["train"].erase(k) == 1);
    for (const char* k : {"lr_scaling", "reference_batch"}) REQUIRE(j["train"]["optimizer"].erase(k) == 1);
    ar.write("nas_meta", c10::IValue(j.dump()));
    ar.save_to(dir + "/v1.ckpt");
    auto l1 = supernet::load_supernet(dir + "/v1.ckpt");
    CHECK(l1.meta.step == 7);
    CHECK(l1.meta.digest.empty());
    CHECK(l1.meta.train.on_nonfinite_loss == "stop");
    CHECK_FALSE(l1.meta.train.sync_bn);
    l1.net->set_active(a);
    l1.net->eval();
    CHECK(torch::allclose(net->forward(x), l1.net->forward(x)));
  }
  test::spit(dir + "/trunc.ckpt", bytes.substr(0, bytes.size() / 2));
  CHECK_THAT(ckpt_error([&] { supernet::load_supernet(dir + "/trunc.ckpt"); }),
             Catch::Matchers::Contains("trunc.ckpt: corrupt or truncated checkpoint"));
  test::spit(dir + "/junk.ckpt", "this is not a checkpoint");
  CHECK_THAT(ckpt_error([&] { supernet::load_supernet(dir + "/junk.ckpt"); }),
             Catch::Matchers::Contains("junk.ckpt: corrupt or truncated checkpoint"));
  CHECK_THAT(ckpt_error([&] { supernet::load_supernet(dir + "/none.ckpt"); }),
             Catch::Matchers::Contains("none.ckpt: cannot open"));
  {
    // Tensors of another space under this space's metadata.
    auto other = space;
    families::edit<families::mbconv::Space>(other).stem_width = {8, 16};
    supernet::Supernet wrong(other, 1, 10);
    supernet::save_supernet(dir + "/shape.ckpt", wrong, meta, nullptr);
  }
  CHECK_THAT(ckpt_error([&] { supernet::load_supernet(dir + "/shape.ckpt"); }),
             Catch::Matchers::Contains("shape.ckpt: tensor stem.weight has shape [16, 1, 3, 3], expected [12, 1, 3, 3]"));
  {
    torch::serialize::OutputArchive ar;
    auto j = supernet::meta_to_json(meta);
    j["format_version"] = 99;
    ar.write("nas_meta", c10::IValue(j.dump()));
    ar.save_to(dir + "/new.ckpt");
  }
  CHECK_THAT(ckpt_error([&] { supernet::read_checkpoint_meta(dir + "/new.ckpt"); }),
             Catch::Matchers::Contains("format_version 99 is newer than this build supports"));
}

TEST_CASE("sorting channels by importance keeps the max child's function and orders the middle channels",
          "[supernet]") {
  torch::manual_seed(6);
  auto space = tiny_space();
  supernet::Supernet net(space, 1, 10);
  net->init_last_bn_gamma(false);
  test::randomize_bn(net);
  net->eval();
  auto mx = families::max_arch(space);
  auto mn = families::min_arch(space);
  torch::NoGradGuard g;
  torch::Tensor x28 = torch::randn({4, 1, mx.resolution, mx.resolution});
  torch::Tensor x20 = torch::randn({4, 1, mn.resolution, mn.resolution});
  net->set_active(mx);
  torch::Tensor before_max = net->forward(x28);
  net->set_active(mn);
  torch::Tensor before_min = net->forward(x20);
  net->sort_channels();
  net->set_active(mx);
  CHECK(torch::allclose(before_max, net->forward(x28), 1e-4, 1e-5));
  net->set_active(mn);
  CHECK_FALSE(torch::allclose(before_min, net->forward(x20), 1e-4, 1e-5));  // smaller children see other channels
  int sorted_blocks = 0;
  for (const auto& p : net->named_parameters()) {
    if (p.key().find("project_conv.weight") == std::string::npos || p.key().find("stage0") != std::string::npos) continue;
    torch::Tensor imp = p.value().abs().sum({0, 2, 3});
    CHECK((imp.slice(0, 0, -1) >= imp.slice(0, 1)).all().item<bool>());
    ++sorted_blocks;
  }
  CHECK(sorted_blocks == 4);  // stages 1 and 2, two blocks each (stage 0 has no expansion)
}
