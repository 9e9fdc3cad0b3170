// Fine-tuning a sliced child from the supernet's weights (issue 19): nas-train-supernet --arch A
// --init-from supernet.ckpt.
#include <torch/torch.h>

#include "catch.h"
#include "core/error.h"
#include "families/documents.h"
#include "families/mbconv/mbconv.h"
#include "families/sampling.h"
#include "helpers.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

using namespace nas;

namespace {

struct Finetune {
  spec::SearchSpace space = families::load_search_space(test::test_data("tiny-space.yaml"));
  spec::TrainSpec recipe = [] {
    auto t = spec::load_train_spec(test::test_data("tiny-train.yaml"));
    t.data.path = test::kFmnist;
    t.data.train_limit = 320;  // 5 steps per epoch at batch 64
    return t;
  }();
  spec::Arch arch = [this] {
    Rng rng(3);
    return families::random_arch(space, rng);
  }();
  std::string supernet_dir = test::temp_dir("ft-supernet");

  Finetune() {
    train::TrainOptions o;
    o.out_dir = supernet_dir;
    train::train_supernet(space, recipe, o);
  }
  std::string supernet_ckpt() const { return supernet_dir + "/supernet.ckpt"; }

  train::TrainSummary run(const spec::TrainSpec& t, const std::string& dir, bool init, int64_t stop = 0,
                          bool resume = false) const {
    train::TrainOptions o;
    o.out_dir = dir;
    o.fixed_arch = arch;
    o.init_from = init ? supernet_ckpt() : "";
    o.stop_after_steps = stop;
    o.resume = resume;
    return train::train_supernet(space, t, o);
  }
};

std::vector<torch::Tensor> child_parameters(const std::string& ckpt) {
  std::vector<torch::Tensor> out;
  for (const auto& p : supernet::load_child(ckpt).net->parameters()) out.push_back(p.detach().clone());
  return out;
}

bool all_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, double atol) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::allclose(a[i], b[i], 0.0, atol)) return false;
  return true;
}

}  // namespace

TEST_CASE("fine-tune: --init-from starts the child from the supernet's weights and records where from", "[finetune]") {
  Finetune f;
  // At a vanishing learning rate the fine-tuned child keeps the inherited weights, the sliced child's.
  auto still = f.recipe;
  still.lr = 1e-8;
  const std::string tuned = test::temp_dir("ft-still"), scratch = test::temp_dir("ft-scratch");
  f.run(still, tuned, true);
  f.run(still, scratch, false);
  auto loaded = supernet::load_supernet(f.supernet_ckpt());
  std::vector<torch::Tensor> sliced;
  for (const auto& p : loaded.net->slice(f.arch)->parameters()) sliced.push_back(p.detach().clone());
  CHECK(all_close(child_parameters(tuned + "/child.ckpt"), sliced, 1e-5));
  CHECK_FALSE(all_close(child_parameters(scratch + "/child.ckpt"), sliced, 1e-2));
  const auto meta = supernet::read_checkpoint_meta(tuned + "/child.ckpt");
  CHECK(meta.init_from == f.supernet_ckpt());
  CHECK(meta.init_digest == loaded.meta.digest);
  CHECK(supernet::read_checkpoint_meta(scratch + "/child.ckpt").init_from.empty());
  // Another space's supernet is refused, naming the file.
  auto other = f.space;
  families::edit<families::mbconv::Space>(other).head_width = {64};
  train::TrainOptions o;
  o.out_dir = test::temp_dir("ft-other");
  o.fixed_arch = families::min_arch(other);
  o.init_from = f.supernet_ckpt();
  CHECK_THAT(test::error_of([&] { train::train_supernet(other, f.recipe, o); }),
             Catch::Matchers::Contains(f.supernet_ckpt()) && Catch::Matchers::Contains("search space"));
}

TEST_CASE("fine-tune: stopped and resumed, it ends bit for bit where an uninterrupted one does", "[finetune]") {
  Finetune f;
  auto t = f.recipe;
  t.epochs = 2;
  t.lr = 0.02;
  const std::string whole = test::temp_dir("ft-whole"), parts = test::temp_dir("ft-parts");
  f.run(t, whole, true);
  CHECK(f.run(t, parts, true, 7).steps == 7);
  CHECK(f.run(t, parts, false, 0, true).steps == 10);
  const auto a = child_parameters(whole + "/child.ckpt"), b = child_parameters(parts + "/child.ckpt");
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
  // The resumed run still says where its weights came from.
  CHECK(supernet::read_checkpoint_meta(parts + "/child.ckpt").init_from == f.supernet_ckpt());
  // It did train: the child moved away from the inherited weights.
  auto loaded = supernet::load_supernet(f.supernet_ckpt());
  std::vector<torch::Tensor> sliced;
  for (const auto& p : loaded.net->slice(f.arch)->parameters()) sliced.push_back(p.detach().clone());
  CHECK_FALSE(all_close(a, sliced, 1e-4));
}
