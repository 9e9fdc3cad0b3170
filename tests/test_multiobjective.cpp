// Multi-objective search: dominance, non-dominated sorting, crowding, hypervolume, NSGA-II.
#include <cmath>

#include "catch.h"
#include "core/error.h"
#include "families/documents.h"
#include "search/objectives.h"
#include "search/search.h"
#include "search_helpers.h"

using namespace nas;
using search::Point;

namespace {
// A generic child's accuracy and cost pull apart: each decision's option raises the cost, and the
// accuracy rises with it with diminishing returns, plus a bonus for the middle option of each
// decision, so the front is neither end alone.
struct TradeOff : search::Estimator {
  std::string name() const override { return "trade-off"; }
  search::Score score(const spec::Arch&) override { throw std::logic_error("not an mbconv child"); }
  search::Score score_generic(const spec::json& child) override {
    ++calls;
    double cost = 0, acc = 0, linear = 0;
    for (const auto& [k, v] : child.at("choices").items()) {
      const int x = v.get<int>();
      cost += x * x;
      linear += x;
      acc += std::sqrt(static_cast<double>(x)) + (x == 2 ? 0.5 : 0.0);
    }
    search::Score s;
    s.acc = acc / 20.0;
    s.params = static_cast<int64_t>(1000 * (1 + cost));
    s.mflops = 1 + linear;  // a third cost, for three objectives
    return s;
  }
  int calls = 0;
};

search::SearchOptions multi_options(const std::string& strategy, int64_t budget, uint64_t seed) {
  search::SearchOptions o;
  o.strategy = strategy;
  o.budget = budget;
  o.seed = seed;
  o.objectives = {"accuracy", "params"};
  o.hv_reference = {0.0, 150000.0};
  return o;
}
}  // namespace

TEST_CASE("dominance, non-dominated fronts and crowding distance", "[multiobjective]") {
  CHECK(search::dominates({1, 1}, {1, 2}));
  CHECK_FALSE(search::dominates({1, 2}, {1, 2}));
  CHECK_FALSE(search::dominates({0, 3}, {1, 2}));
  const std::vector<Point> pts = {{1, 5}, {2, 2}, {5, 1}, {3, 3}, {4, 4}, {6, 6}, {2, 2}};
  auto fronts = search::nondominated_fronts(pts);
  REQUIRE(fronts.size() == 4);
  CHECK(fronts[0] == std::vector<size_t>{0, 1, 2, 6});  // equal points share a front
  CHECK(fronts[1] == std::vector<size_t>{3});
  CHECK(fronts[2] == std::vector<size_t>{4});
  CHECK(fronts[3] == std::vector<size_t>{5});
  auto d = search::crowding_distance(pts, {0, 1, 2});
  CHECK(std::isinf(d[0]));
  CHECK(std::isinf(d[2]));
  CHECK(d[1] == Approx((5.0 - 1.0) / 4.0 + (5.0 - 1.0) / 4.0));
}

TEST_CASE("hypervolume in two and three objectives, and as a front grows", "[multiobjective]") {
  // Two points, reference (4, 4): 3 + 6 - 2 (their overlap).
  CHECK(search::hypervolume({{1, 3}, {2, 1}}, {4, 4}) == Approx(7.0));
  // A dominated point and one outside the box add nothing.
  CHECK(search::hypervolume({{1, 3}, {2, 1}, {3, 3}, {0, 5}}, {4, 4}) == Approx(7.0));
  CHECK(search::hypervolume({}, {4, 4}) == 0.0);
  // Three objectives: two boxes of 2x2x2 and 1x1x4 overlapping in 1x1x2, inside (4, 4, 4).
  CHECK(search::hypervolume({{2, 2, 2}, {3, 3, 0}}, {4, 4, 4}) == Approx(8.0 + 4.0 - 2.0));
  // The tracker equals a fresh computation over every point added so far.
  Rng rng(8);
  search::HypervolumeTracker t({1.0, 1.0, 1.0});
  std::vector<Point> all;
  double last = 0;
  for (int i = 0; i < 60; ++i) {
    Point p = {rng.uniform(), rng.uniform(), rng.uniform()};
    all.push_back(p);
    double v = t.add(p);
    CHECK(v >= last);
    last = v;
  }
  CHECK(last == Approx(search::hypervolume(all, {1.0, 1.0, 1.0})));
  CHECK_THROWS_AS(search::check_objectives({"accuracy"}), UsageError);
  CHECK_THROWS_AS(search::check_objectives({"accuracy", "flops"}), UsageError);
  CHECK_THROWS_AS(search::check_objectives({"params", "params"}), UsageError);
  CHECK_NOTHROW(search::check_objectives({"accuracy", "latency_ms", "memory_mib"}));
}

TEST_CASE("a multi-objective search records its front, its hypervolume and each candidate's", "[multiobjective]") {
  search::GenericEncoding enc(test::generic_decisions(6, 5), "toy.yaml", "toy");
  TradeOff est;
  auto r = search::run_search(enc, {}, est, multi_options("nsga2", 60, 2));
  REQUIRE(r.multi_objective());
  CHECK(r.objectives == std::vector<std::string>{"accuracy", "params"});
  CHECK(r.hv_reference == std::vector<double>{0.0, 150000.0});
  REQUIRE(r.multi.front.size() >= 3);
  // No candidate dominates a front member; the front runs by increasing params, accuracy never falling.
  for (size_t i = 0; i < r.multi.front.size(); ++i) {
    const auto& f = r.candidates[static_cast<size_t>(r.multi.front[i])];
    for (const auto& c : r.candidates)
      if (c.evaluated && c.feasible)
        CHECK_FALSE(search::dominates(search::objective_point(c, r.objectives),
                                      search::objective_point(f, r.objectives)));
    if (i > 0) {
      const auto& prev = r.candidates[static_cast<size_t>(r.multi.front[i - 1])];
      CHECK(f.params >= prev.params);
      CHECK(f.val_acc >= prev.val_acc);
    }
  }
  // Each candidate's hypervolume never falls, and the last is the result's.
  double last = 0;
  for (const auto& c : r.candidates) {
    CHECK(c.hypervolume >= last);
    last = c.hypervolume;
  }
  CHECK(last == Approx(r.multi.hypervolume));
  CHECK(r.multi.hypervolume > 0);
  // Through JSON.
  auto back = families::search_result_from_json(spec::to_json(r), "s.json");
  CHECK(back.multi.front == r.multi.front);
  CHECK(back.multi.hypervolume == r.multi.hypervolume);
  CHECK(back.candidates[7].hypervolume == r.candidates[7].hypervolume);
  CHECK(spec::to_json(back) == spec::to_json(r));
  // A reference of the wrong size; a cost the estimator does not report.
  auto bad = multi_options("nsga2", 5, 2);
  bad.hv_reference = {0.0};
  CHECK_THROWS_AS(search::run_search(enc, {}, est, bad), UsageError);
  auto unreported = multi_options("random", 3, 2);
  unreported.objectives = {"accuracy", "latency_ms"};
  unreported.hv_reference = {0.0, 10.0};
  auto none = search::run_search(enc, {}, est, unreported);
  for (const auto& c : none.candidates) CHECK_THAT(c.error, Catch::Matchers::Contains("latency_ms is an objective"));
  // Without a reference, a generic space's cost has none to fall back on.
  auto no_ref = multi_options("random", 3, 2);
  no_ref.hv_reference.clear();
  CHECK_THROWS_WITH(search::run_search(enc, {}, est, no_ref), Catch::Matchers::Contains("--hv-reference"));
}

TEST_CASE("nsga2 at 150 evaluations covers more hypervolume than random search at 150", "[multiobjective]") {
  search::GenericEncoding enc(test::generic_decisions(6, 5), "toy.yaml", "toy");
  double nsga2 = 0, random = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    TradeOff a, b;
    nsga2 += search::run_search(enc, {}, a, multi_options("nsga2", 150, seed)).multi.hypervolume / 5;
    random += search::run_search(enc, {}, b, multi_options("random", 150, seed)).multi.hypervolume / 5;
    CHECK(a.calls == 150);
  }
  INFO("nsga2 " << nsga2 << " random " << random);
  CHECK(nsga2 > random);
}

TEST_CASE("ehvi covers more hypervolume at 40 evaluations than random search, never asking a child twice",
          "[multiobjective]") {
  search::GenericEncoding enc(test::generic_decisions(6, 5), "toy.yaml", "toy");
  for (const bool three : {false, true}) {
    INFO((three ? "accuracy, params, mflops" : "accuracy, params"));
    double ehvi = 0, random = 0;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      auto o = multi_options("ehvi", 40, seed);
      if (three) {
        o.objectives.push_back("mflops");
        o.hv_reference.push_back(30.0);
      }
      TradeOff a, b;
      auto r = search::run_search(enc, {}, a, o);
      ehvi += r.multi.hypervolume / 5;
      CHECK(r.cache_hits == 0);  // every proposal a child not scored before
      int modelled = 0;
      for (const auto& c : r.candidates) modelled += c.origin == "expected-hypervolume-improvement";
      CHECK(modelled == 40 - 5);  // after the warm-up of max(5, min(10, 40 / 10)) random children
      o.strategy = "random";
      random += search::run_search(enc, {}, b, o).multi.hypervolume / 5;
    }
    INFO("ehvi " << ehvi << " random " << random);
    CHECK(ehvi > random);
  }
}

TEST_CASE("ehvi values only the hypervolume inside the search's reference point", "[multiobjective]") {
  // A reference that admits only cheap children (params below 20,000 of the toy's 1,000 to 97,000):
  // ehvi's proposals go there far more often than with a reference that admits every child.
  search::GenericEncoding enc(test::generic_decisions(6, 5), "toy.yaml", "toy");
  int inside_tight = 0, inside_loose = 0;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    for (const double ref : {20000.0, 150000.0}) {
      auto o = multi_options("ehvi", 40, seed);
      o.hv_reference = {0.0, ref};
      TradeOff est;
      for (const auto& c : search::run_search(enc, {}, est, o).candidates)
        (ref < 1e5 ? inside_tight : inside_loose) += c.origin == "expected-hypervolume-improvement" && c.params < 20000;
    }
  }
  INFO("proposals inside 20,000 params: tight reference " << inside_tight << ", loose " << inside_loose
                                                          << " (of 105 each)");
  CHECK(inside_tight > inside_loose + 20);
}
