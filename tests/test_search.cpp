#include <cmath>
#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/log.h"
#include "helpers.h"
#include "search/search.h"
#include "spec/search_space.h"
#include "supernet/cost.h"
#include "supernet/sampling.h"

using namespace nas;

namespace {
// A stand-in estimator: accuracy grows with compute (a monotone, deterministic objective), so the
// right answer under a FLOPs bound is known: as close to the bound as the space allows.
class FakeEstimator : public search::Estimator {
 public:
  explicit FakeEstimator(const spec::SearchSpace& s) : s_(s) {}
  std::string name() const override { return "fake"; }
  search::Score score(const spec::Arch& a) override {
    ++calls;
    double m = supernet::arch_cost(s_, a, 1, 10).mflops();
    return {1.0 - 1.0 / (1.0 + m), 1.0 / (1.0 + m)};
  }
  int calls = 0;

 private:
  const spec::SearchSpace& s_;
};

spec::SearchSpace space() { return spec::load_search_space(test::src("configs/spaces/fmnist-mbconv.yaml")); }
}  // namespace

TEST_CASE("strategies respect constraints, budget and cache, and are deterministic", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return supernet::arch_cost(s, a, 1, 10); };
  double max_mf = supernet::arch_cost(s, supernet::max_arch(s), 1, 10).mflops();
  double min_mf = supernet::arch_cost(s, supernet::min_arch(s), 1, 10).mflops();
  double bound = min_mf + 0.3 * (max_mf - min_mf);
  for (std::string strategy : {"random", "coarse-to-fine"}) {
    INFO(strategy);
    search::SearchOptions o;
    o.strategy = strategy;
    o.budget = 40;
    o.seed = 11;
    o.constraints.max_mflops = bound;
    FakeEstimator est(s);
    auto r = search::run_search(s, cost, est, o);
    int evaluated = 0;
    std::set<std::string> hashes;
    for (const auto& c : r.candidates) {
      CHECK(hashes.insert(c.hash).second);  // each arch once
      CHECK(c.feasible == (c.mflops <= bound));
      if (c.evaluated) {
        ++evaluated;
        CHECK(c.feasible);
        CHECK(c.estimator == "fake");
      }
    }
    CHECK(evaluated == 40);
    CHECK(est.calls == 40);  // the cache kept repeated proposals from the estimator
    REQUIRE(r.best >= 0);
    for (const auto& c : r.candidates)
      if (c.evaluated) CHECK(c.val_acc <= r.candidates[r.best].val_acc);
    CHECK(r.candidates[r.best].mflops <= bound);
    REQUIRE_FALSE(r.pareto.empty());
    CHECK(r.pareto.back() == r.best);
    FakeEstimator est2(s);
    auto r2 = search::run_search(s, cost, est2, o);
    REQUIRE(r2.candidates.size() == r.candidates.size());
    for (size_t i = 0; i < r.candidates.size(); ++i) CHECK(r2.candidates[i].hash == r.candidates[i].hash);
    o.seed = 12;
    FakeEstimator est3(s);
    auto r3 = search::run_search(s, cost, est3, o);
    bool same = r3.candidates.size() == r.candidates.size();
    for (size_t i = 0; same && i < r.candidates.size(); ++i) same = r3.candidates[i].hash == r.candidates[i].hash;
    if (strategy == "random") CHECK_FALSE(same);
  }
}

TEST_CASE("coarse-to-fine gets close to the bound on a monotone objective", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return supernet::arch_cost(s, a, 1, 10); };
  double max_mf = supernet::arch_cost(s, supernet::max_arch(s), 1, 10).mflops();
  double min_mf = supernet::arch_cost(s, supernet::min_arch(s), 1, 10).mflops();
  double bound = min_mf + 0.4 * (max_mf - min_mf);
  search::SearchOptions o;
  o.budget = 60;
  o.constraints.max_mflops = bound;
  FakeEstimator est(s);
  auto r = search::run_search(s, cost, est, o);
  REQUIRE(r.best >= 0);
  double best = r.candidates[r.best].mflops;
  INFO("bound " << bound << " best " << best << " min " << min_mf << " max " << max_mf);
  CHECK(best > 0.85 * bound);
  // Its coarse phase spent at most half the budget; the rest went to mutations of the best.
  int coarse = 0, mutation = 0;
  for (const auto& c : r.candidates)
    if (c.evaluated) (c.origin == "coarse" ? coarse : mutation) += 1;
  CHECK(coarse <= 30);
  CHECK(mutation >= 30);
}

TEST_CASE("an unsatisfiable constraint is a spec error naming the smallest child", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return supernet::arch_cost(s, a, 1, 10); };
  search::SearchOptions o;
  o.constraints.max_params = 10;
  FakeEstimator est(s);
  try {
    search::run_search(s, cost, est, o);
    FAIL("no error");
  } catch (const SpecError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("no child satisfies"));
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("the smallest child has"));
  }
  CHECK(est.calls == 0);
}

TEST_CASE("an interrupted search returns what it evaluated, marked interrupted", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return supernet::arch_cost(s, a, 1, 10); };
  struct Interrupting : FakeEstimator {
    using FakeEstimator::FakeEstimator;
    search::Score score(const spec::Arch& a) override {
      if (calls == 7) request_interrupt();  // as SIGINT would, during the 8th evaluation
      return FakeEstimator::score(a);
    }
  } est(s);
  search::SearchOptions o;
  o.budget = 30;
  auto r = search::run_search(s, cost, est, o);
  clear_interrupt();
  CHECK(r.interrupted);
  int evaluated = 0;
  for (const auto& c : r.candidates) evaluated += c.evaluated;
  CHECK(evaluated == 8);
  CHECK(r.best >= 0);
  CHECK(spec::to_json(r)["interrupted"] == true);
}

TEST_CASE("mutations stay inside the space and change something", "[search]") {
  auto s = space();
  Rng rng(4);
  spec::Arch a = supernet::random_arch(s, rng);
  for (int i = 0; i < 200; ++i) {
    spec::Arch m = supernet::mutate_arch(a, s, rng, 0.2);
    CHECK(m != a);
    spec::validate_arch(m, s, "mutant");
    a = m;
  }
}
