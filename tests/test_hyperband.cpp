// Hyperband: its brackets, promotions by score, top-fidelity fronts, and resume by replay.
#include <map>

#include "catch.h"
#include "core/error.h"
#include "core/log.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/sampling.h"
#include "helpers.h"
#include "search/hyperband.h"
#include "spec/search_space.h"

using namespace nas;

namespace {
// A training estimator stand-in: the score grows with the child's MFLOPs and with the epochs, so
// every rung ranks children alike and the best child is known.
struct Epochs : search::Estimator {
  explicit Epochs(const spec::SearchSpace& s) : s_(s) {}
  std::string name() const override { return "epochs"; }
  search::Score score(const spec::Arch& a) override { return score_at(a, 9); }
  search::Score score_at(const spec::Arch& a, int epochs) override {
    ++calls[epochs];
    const double m = families::arch_cost(s_, a, 1, 10).mflops();
    search::Score s;
    s.acc = (1.0 - 1.0 / (1.0 + m)) * (1.0 - 1.0 / (1.0 + epochs));
    return s;
  }
  int total() const {
    int n = 0;
    for (const auto& [e, k] : calls) n += k;
    return n;
  }
  std::map<int, int> calls;
  const spec::SearchSpace& s_;
};

search::SearchOptions hyperband_options(int64_t budget) {
  search::SearchOptions o;
  o.strategy = "hyperband";
  o.budget = budget;
  o.seed = 4;
  return o;
}
}  // namespace

TEST_CASE("hyperband's brackets: many short trainings to a few long ones", "[hyperband]") {
  auto b = search::hyperband_brackets(1, 9, 3);
  REQUIRE(b.size() == 3);
  auto rungs = [](const std::vector<search::Rung>& r) {
    std::vector<std::pair<int, int>> v;
    for (const auto& x : r) v.emplace_back(x.children, x.epochs);
    return v;
  };
  CHECK(rungs(b[0]) == std::vector<std::pair<int, int>>{{9, 1}, {3, 3}, {1, 9}});
  CHECK(rungs(b[1]) == std::vector<std::pair<int, int>>{{5, 3}, {1, 9}});
  CHECK(rungs(b[2]) == std::vector<std::pair<int, int>>{{3, 9}});
  CHECK(search::hyperband_brackets(2, 16, 2).front().front().epochs == 2);
  CHECK(search::hyperband_brackets(4, 4, 3).size() == 1);
  CHECK_THROWS_AS(search::hyperband_brackets(5, 4, 3), UsageError);
  CHECK_THROWS_AS(search::hyperband_brackets(1, 9, 1), UsageError);
}

TEST_CASE("hyperband promotes the best of each rung, and only the top fidelity makes the front", "[hyperband]") {
  auto s = families::load_search_space(test::test_data("tiny-space.yaml"));
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  search::ArchEncoding enc(s);
  Epochs est(s);
  auto r = search::run_hyperband(enc, cost, est, hyperband_options(22));  // one iteration: 13 + 6 + 3
  REQUIRE(r.candidates.size() == 22);
  CHECK(est.calls == std::map<int, int>{{1, 9}, {3, 3 + 5}, {9, 1 + 1 + 3}});
  // The first bracket: its rung at 3 epochs holds the best three of the nine at 1 epoch.
  std::vector<double> first;
  std::vector<std::string> promoted;
  for (const auto& c : r.candidates) {
    CHECK(c.evaluated);
    CHECK(c.fidelity > 0);
    if (c.origin == "hyperband0.bracket0.rung0") first.push_back(c.val_acc);
    if (c.origin == "hyperband0.bracket0.rung1") promoted.push_back(c.hash);
  }
  REQUIRE(first.size() == 9);
  REQUIRE(promoted.size() == 3);
  std::sort(first.rbegin(), first.rend());
  for (const auto& c : r.candidates)
    if (c.origin == "hyperband0.bracket0.rung0" && std::count(promoted.begin(), promoted.end(), c.hash))
      CHECK(c.val_acc >= first[2]);
  REQUIRE(r.best >= 0);
  CHECK(r.candidates[r.best].fidelity == 9);
  for (int i : r.pareto) CHECK(r.candidates[i].fidelity == 9);
  CHECK(r.strategy_options["eta"] == 3);
  // Through JSON: the fidelity of each score is kept.
  auto back = families::search_result_from_json(spec::to_json(r), "h.json");
  CHECK(back.candidates[3].fidelity == r.candidates[3].fidelity);
  CHECK(spec::to_json(back) == spec::to_json(r));
  // Stopped after a checkpoint at 10 evaluations, then resumed: the same search, 12 trainings more.
  auto o = hyperband_options(22);
  spec::SearchResult last;
  o.on_checkpoint = [&](const spec::SearchResult& x) { last = x; };
  struct Dying : Epochs {
    using Epochs::Epochs;
    search::Score score_at(const spec::Arch& a, int epochs) override {
      if (total() == 11) request_interrupt();
      return Epochs::score_at(a, epochs);
    }
  } dying(s);
  auto partial = search::run_hyperband(enc, cost, dying, o);
  clear_interrupt();
  CHECK(partial.interrupted);
  REQUIRE(last.candidates.size() == 10);
  o.on_checkpoint = nullptr;
  for (const auto& c : families::search_result_from_json(spec::to_json(last), "h.json").candidates)
    o.replay[search::replay_key(c)] = c;
  Epochs again(s);
  auto resumed = search::run_hyperband(enc, cost, again, o);
  CHECK(again.total() == 12);
  REQUIRE(resumed.candidates.size() == r.candidates.size());
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    CHECK(resumed.candidates[i].hash == r.candidates[i].hash);
    CHECK(resumed.candidates[i].fidelity == r.candidates[i].fidelity);
  }
  CHECK(resumed.best == r.best);
  // Bounds that only the smallest children meet: the few found are trained, and the search ends
  // (an iteration that trains nothing new stops it) instead of drawing forever.
  auto tight = hyperband_options(1000);
  tight.constraints.max_mflops = families::arch_cost(s, families::min_arch(s), 1, 10).mflops() * 1.001;
  Epochs few(s);
  auto small = search::run_hyperband(enc, cost, few, tight);
  CHECK(small.candidates.size() < 1000);
  CHECK_FALSE(small.interrupted);
  // An estimator without epochs to vary.
  struct Fixed : search::Estimator {
    std::string name() const override { return "fixed"; }
    search::Score score(const spec::Arch&) override { return {}; }
  } fixed;
  CHECK_THROWS_WITH(search::run_hyperband(enc, cost, fixed, hyperband_options(3)),
                    Catch::Matchers::Contains("--estimator low-fidelity"));
}
