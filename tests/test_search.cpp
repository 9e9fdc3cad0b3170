#include <algorithm>
#include <cmath>
#include <sstream>
#include <functional>
#include <map>
#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/log.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/mbconv/mbconv.h"
#include "families/mlp/mlp.h"
#include "families/sampling.h"
#include "helpers.h"
#include "search/encoding.h"
#include "search/external.h"
#include "search/predictor.h"
#include "search/search.h"
#include "search/strategy.h"
#include "search_helpers.h"
#include "spec/document.h"
#include "spec/search_space.h"

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
    double m = families::arch_cost(s_, a, 1, 10).mflops();
    return {1.0 - 1.0 / (1.0 + m), 1.0 / (1.0 + m), "", ""};
  }
  int calls = 0;

 private:
  const spec::SearchSpace& s_;
};

spec::SearchSpace space() { return families::load_search_space(test::src("configs/spaces/fmnist-mbconv.yaml")); }
}  // namespace

TEST_CASE("strategies respect constraints, budget and cache, and are deterministic", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  double max_mf = families::arch_cost(s, families::max_arch(s), 1, 10).mflops();
  double min_mf = families::arch_cost(s, families::min_arch(s), 1, 10).mflops();
  double bound = min_mf + 0.3 * (max_mf - min_mf);
  for (const std::string& strategy : search::strategy_names()) {
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
    if (strategy == "random" || strategy == "evolution") CHECK_FALSE(same);
  }
}

TEST_CASE("coarse-to-fine gets close to the bound on a monotone objective", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  double max_mf = families::arch_cost(s, families::max_arch(s), 1, 10).mflops();
  double min_mf = families::arch_cost(s, families::min_arch(s), 1, 10).mflops();
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

TEST_CASE("coarse-to-fine on unordered decisions only: its grid is the uniform children", "[search]") {
  // Nothing ordered to sweep: every decision at its k-th option in turn (a cell's "every edge the
  // same op"), for any space, not only cells.
  search::GenericEncoding enc(test::categorical_decisions(3, 4), "s.yaml", "toy");
  search::StrategyOptions o;
  o.budget = 20;
  auto st = search::make_strategy("coarse-to-fine", enc, o);
  Rng rng(1);
  std::set<search::Genotype> grid;
  for (int i = 0; i < 4; ++i) {
    grid.insert(*st->ask(rng));
    CHECK(st->origin() == "coarse");
  }
  CHECK(grid == std::set<search::Genotype>{{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}});
  for (const auto& g : grid) st->tell(g, true, g[0]);
  st->ask(rng);
  CHECK(st->origin() == "mutation");  // the grid is spent: mutations of the best
}

TEST_CASE("an unsatisfiable constraint is a spec error naming the smallest child", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
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
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
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
  spec::Arch a = families::random_arch(s, rng);
  for (int i = 0; i < 200; ++i) {
    spec::Arch m = families::mutate_arch(a, s, rng, 0.2);
    CHECK(m != a);
    families::validate_arch(m, s, "mutant");
    a = m;
  }
}


TEST_CASE("mbconv encoding: decisions, round trips, canonical genotypes, neighbours", "[search]") {
  auto s = space();
  search::ArchEncoding enc(s);
  // resolution, stem, head, and per stage depth + width + 2 per block slot.
  size_t expected = 3;
  for (const auto& st : families::mbconv::space_of(s).stages) expected += 2 + 2 * static_cast<size_t>(spec::max_of(st.depth));
  CHECK(enc.size() == expected);
  CHECK(enc.decisions()[0].name == "resolution");
  CHECK(enc.decisions()[0].labels == std::vector<std::string>{"20", "24", "28"});
  Rng rng(3);
  for (int i = 0; i < 100; ++i) {
    spec::Arch a = families::random_arch(s, rng);
    search::Genotype g = enc.encode(a);
    CHECK(enc.decode(g) == a);
    CHECK(enc.key(g) == spec::arch_hash(a));
    CHECK(enc.canonical(g) == g);
    for (const auto& n : enc.neighbours(g)) {
      int diff = 0;
      // One decision moved; a shallower stage also resets its dropped block slots to option 0.
      for (size_t j = 0; j < g.size(); ++j) diff += n[j] != g[j] && enc.active(g, j) && enc.active(n, j);
      CHECK(diff == 1);
      families::validate_arch(enc.decode(n), s, "neighbour");
    }
    search::Genotype m = enc.mutate(g, rng, 0.1);
    CHECK(enc.key(m) != enc.key(g));
    families::validate_arch(enc.decode(m), s, "mutant");
  }
  // A genotype that differs only in a block beyond its stage's depth is the same child.
  search::Genotype g = enc.encode(families::min_arch(s));
  size_t slot = 0;
  for (size_t j = 0; j < enc.size(); ++j)
    if (!enc.active(g, j) && enc.decisions()[j].size() > 1) slot = j;
  REQUIRE(slot > 0);
  search::Genotype g2 = g;
  g2[slot] = 1;
  CHECK(enc.key(g2) == enc.key(g));
  CHECK(enc.canonical(g2) == g);
  CHECK_THROWS_AS(enc.decode(search::Genotype(3, 0)), SpecError);
}

TEST_CASE("generic encoding: named decisions from a spec, round trips and clear errors", "[search]") {
  spec::json d = spec::json::parse(R"([{"name": "lr", "choices": [0.1, 0.01]},
                                       {"name": "act", "choices": ["relu", "gelu", "tanh"]},
                                       {"name": "bn", "choices": [true, false]}])");
  search::GenericEncoding enc(d, "space.yaml", "toy");
  CHECK(enc.size() == 3);
  CHECK(enc.cardinality() == 12);
  search::Genotype g{1, 2, 0};
  spec::json a = enc.to_json(g);
  CHECK(a["choices"]["act"] == "tanh");
  CHECK(a["choices"]["lr"] == 0.01);
  CHECK(enc.from_json(a, "a.json") == g);
  a["choices"]["act"] = "swish";
  try {
    enc.from_json(a, "a.json");
    FAIL("no error");
  } catch (const SpecError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("a.json"));
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("choices.act"));
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("one of relu, gelu, tanh"));
  }
  auto bad = [](const char* text) {
    try {
      search::GenericEncoding(spec::json::parse(text), "s.yaml", "toy");
    } catch (const SpecError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(bad(R"([{"name": "a", "choices": [1]}, {"name": "a", "choices": [2]}])"),
             Catch::Matchers::Contains("unique decision name"));
  CHECK_THAT(bad(R"([{"name": "a", "choices": []}])"), Catch::Matchers::Contains("non-empty list"));
  CHECK_THAT(bad(R"([{"name": "a", "choices": [1, 1]}])"), Catch::Matchers::Contains("distinct options"));
  CHECK_THAT(bad(R"([{"name": "a", "choices": [1], "extra": 2}])"), Catch::Matchers::Contains("extra"));
  CHECK_THAT(bad(R"([])"), Catch::Matchers::Contains("non-empty list"));
}

TEST_CASE("every strategy works on a generic space and beats chance on a known objective", "[search]") {
  // 8 decisions of 6 options; the score peaks at a hidden target (separable, so hill climbing
  // must reach the optimum).
  search::GenericEncoding enc(test::generic_decisions(8, 6), "toy.yaml", "toy");
  const search::Genotype target{5, 0, 3, 2, 4, 1, 5, 2};
  auto f = [&](const search::Genotype& g) {
    double d = 0;
    for (size_t i = 0; i < g.size(); ++i) d += std::abs(g[i] - target[i]);
    return 1.0 - d / 40.0;
  };
  search::StrategyOptions o;
  o.budget = 150;
  const double random_mean = test::random_search_mean(enc, f, o);
  for (const auto& name : search::strategy_names()) {
    INFO(name);
    if (name == "random" || name == "grid") continue;
    auto st = search::make_any_strategy(name, enc, o, 1);
    double best = test::drive(*st, enc, f, 150, 1);
    INFO("best " << best << " random " << random_mean);
    CHECK(best > random_mean);
    if (name == "hill-climbing") CHECK(best == 1.0);
    // Deterministic: the same seed gives the same best.
    auto again = search::make_any_strategy(name, enc, o, 1);
    CHECK(test::drive(*again, enc, f, 150, 1) == best);
  }
  // Grid: every child exactly once, then nothing left.
  search::GenericEncoding small(test::generic_decisions(3, 4), "small.yaml", "small");
  auto grid = search::make_strategy("grid", small, o);
  int distinct = 0;
  test::drive(*grid, small, [](const search::Genotype&) { return 0.0; }, 1000, 0, &distinct);
  CHECK(distinct == 64);
  Rng rng(0);
  CHECK_FALSE(grid->ask(rng).has_value());
  CHECK_THROWS_AS(search::make_strategy("annealing", enc, o), UsageError);
}

TEST_CASE("every strategy finds unordered choices (an mlp space's activations) better than random search",
          "[search]") {
  auto s = families::load_search_space(test::src("configs/spaces/fmnist-mlp.yaml"));
  search::ArchEncoding enc(s);
  // Best: 3 layers, all swish (the third of four listed: no ordinal trend leads to it), widest.
  auto f = [&](const search::Genotype& g) {
    const spec::Arch a = enc.decode(g);
    const auto& layers = families::mlp::choices_of(a).layers;
    double v = 0;
    for (size_t i = 0; i < layers.size(); ++i)
      v += (layers[i].act == "swish" ? 1.0 : 0.0) +
           0.25 * layers[i].width / spec::max_of(families::mlp::space_of(s).layers[i].width);
    return v / 3.75;
  };
  CHECK(test::strategies_not_beating_random(enc, f, 80) == std::vector<std::string>{});
}

TEST_CASE("nsga2 starts from the space's extremes; an infeasible one stays out of its population", "[search]") {
  auto s = space();
  search::ArchEncoding enc(s);
  const search::Genotype cheapest = enc.encode(families::cheapest_arch(s));
  const search::Genotype largest = enc.encode(families::max_arch(s));
  CHECK(enc.extremes() == std::vector<search::Genotype>{cheapest, largest});
  CHECK(search::GenericEncoding(test::generic_decisions(3, 4), "toy.yaml", "toy").extremes().empty());
  // A cell space of one stage has no reduction cell: the extremes leave its ops at option 0, as
  // every equal child does (the largest child's own encoding names its costliest ops there).
  spec::json one_stage = spec::load_document(test::src("tests/data/tiny-cell.yaml"));
  one_stage["cells"] = {1};
  const auto cell_space = families::search_space_from_json(one_stage, "one-stage.yaml");
  search::ArchEncoding cell(cell_space);
  const search::Genotype cell_largest = cell.encode(families::max_arch(cell_space));
  CHECK(cell_largest != cell.canonical(cell_largest));
  CHECK(cell.extremes().at(1) == cell.canonical(cell_largest));
  // A bound the largest child exceeds: it is recorded infeasible, unevaluated.
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  search::SearchOptions o;
  o.strategy = "nsga2";
  o.budget = 30;
  o.seed = 3;
  o.objectives = {"accuracy", "mflops"};
  o.constraints.max_mflops = 0.5 * cost(families::max_arch(s)).mflops();
  FakeEstimator est(s);
  auto r = search::run_search(s, cost, est, o);
  REQUIRE(r.candidates.size() >= 2);
  CHECK(r.candidates[0].hash == enc.key(cheapest));
  CHECK(r.candidates[0].evaluated);
  CHECK(r.candidates[1].hash == enc.key(largest));
  CHECK_FALSE(r.candidates[1].feasible);
  CHECK_FALSE(r.candidates[1].evaluated);
  // Without the extremes, the first population is random children only.
  o.strategy_options.nsga2_extremes = false;
  FakeEstimator est2(s);
  for (const auto& c : search::run_search(s, cost, est2, o).candidates) {
    CHECK(c.hash != enc.key(cheapest));
    CHECK(c.hash != enc.key(largest));
  }
  // Asked ahead (a batch) and told one by one: a population of 2 holds the cheapest child and a
  // random one, not the infeasible largest, before it breeds.
  search::StrategyOptions so;
  so.nsga2_population = 2;
  auto nsga2 = search::make_nsga2(enc, so);
  Rng rng(4);
  CHECK(*nsga2->ask(rng) == cheapest);
  CHECK(nsga2->origin() == "extreme");
  CHECK(nsga2->ask_ahead(1));
  CHECK(*nsga2->ask(rng) == largest);
  nsga2->tell(cheapest, true, 0.5, {-0.5, 1.0});
  nsga2->tell(largest, false, 0.0, {});
  CHECK(nsga2->ask_ahead(0));  // one member of two: still filling
  const search::Genotype third = *nsga2->ask(rng);
  CHECK(nsga2->origin() == "random");
  nsga2->tell(third, true, 0.6, {-0.6, 2.0});
  nsga2->ask(rng);
  CHECK(nsga2->origin() == "offspring");
  // A stopped search written before the extremes resumes without them.
  spec::json stopped = search::strategy_options_json("nsga2", so);
  CHECK(stopped.at("extremes") == true);
  stopped.erase("extremes");
  search::adopt_stopped_defaults("nsga2", 30, stopped, so);
  CHECK_FALSE(so.nsga2_extremes);
  CHECK(stopped == search::strategy_options_json("nsga2", so));
}

TEST_CASE("a search resumed from its checkpoint replays the evaluations and ends like an uninterrupted one",
          "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  double max_mf = families::arch_cost(s, families::max_arch(s), 1, 10).mflops();
  for (std::string strategy : {"evolution", "bayesian", "reinforce", "tpe", "nsga2", "ehvi"}) {
    INFO(strategy);
    const bool multi = strategy == "nsga2" || strategy == "ehvi";
    search::SearchOptions o;
    o.strategy = strategy;
    if (multi) o.objectives = {"accuracy", "mflops"};
    o.budget = 30;
    o.seed = 5;
    o.constraints.max_mflops = 0.6 * max_mf;
    o.strategy_options.population = o.strategy_options.nsga2_population = 8;
    o.strategy_options.sample_size = 3;
    FakeEstimator full_est(s);
    auto full = search::run_search(s, cost, full_est, o);
    // Killed after a checkpoint at 10 evaluations (the last one it wrote).
    spec::SearchResult last;
    int checkpoints = 0;
    o.on_checkpoint = [&](const spec::SearchResult& r) {
      last = r;
      ++checkpoints;
    };
    struct Dying : FakeEstimator {
      using FakeEstimator::FakeEstimator;
      search::Score score(const spec::Arch& a) override {
        if (calls == 13) request_interrupt();
        return FakeEstimator::score(a);
      }
    } dying(s);
    auto partial = search::run_search(s, cost, dying, o);
    clear_interrupt();
    CHECK(partial.interrupted);
    CHECK(checkpoints == 1);
    REQUIRE(last.interrupted);
    // Through JSON, as nas-search --resume reads it.
    auto loaded = families::search_result_from_json(spec::to_json(last), "search.json");
    o.on_checkpoint = nullptr;
    for (const auto& c : loaded.candidates)
      if (c.evaluated) o.replay[c.hash] = c;
    CHECK(o.replay.size() == 10);
    FakeEstimator resumed_est(s);
    auto resumed = search::run_search(s, cost, resumed_est, o);
    CHECK(resumed_est.calls == 20);  // only the evaluations the stopped run had not recorded
    REQUIRE(resumed.candidates.size() == full.candidates.size());
    for (size_t i = 0; i < full.candidates.size(); ++i) {
      CHECK(resumed.candidates[i].hash == full.candidates[i].hash);
      CHECK(resumed.candidates[i].val_acc == full.candidates[i].val_acc);
    }
    CHECK(resumed.best == full.best);
    CHECK(resumed.pareto == full.pareto);
    CHECK(resumed.multi.front == full.multi.front);
    CHECK(resumed.multi.hypervolume == full.multi.hypervolume);
    if (multi) CHECK(full.multi.hypervolume > 0);
  }
}

TEST_CASE("external evaluator: arch JSON in, metrics out, failures reported per candidate", "[search]") {
  std::string d = test::temp_dir("evaluator");
  // Accuracy from the size of the arch document: deterministic and different between children.
  test::spit(d + "/good.sh",
             "awk '{n += length($0)} END {printf \"{\\\"accuracy\\\": %.6f, \\\"loss\\\": 0.5}\\n\", 1 - 100 / (100 + n)}'\n");
  test::spit(d + "/fail.sh", "cat > /dev/null; echo 'cannot build this arch' >&2; exit 3\n");
  test::spit(d + "/slow.sh", "sleep 5; echo '{\"accuracy\": 0.5}'\n");
  test::spit(d + "/garbage.sh", "echo hello\n");
  test::spit(d + "/range.sh", "echo '{\"accuracy\": 1.5}'\n");
  auto ok = search::run_external("sh " + d + "/good.sh", "{\n  \"a\": 1\n}\n", 10);
  REQUIRE(ok.ok);
  CHECK(ok.accuracy == Approx(1 - 100.0 / 110));
  CHECK(ok.loss == 0.5);
  CHECK(search::run_external("sh " + d + "/fail.sh", "{}", 10).error == "exited with status 3: cannot build this arch");
  double t0 = now_seconds();
  CHECK(search::run_external("sh " + d + "/slow.sh", "{}", 0.3).error == "timed out after 0.3 s (killed)");
  CHECK(now_seconds() - t0 < 3);  // killed, not waited for
  CHECK_THAT(search::run_external("sh " + d + "/garbage.sh", "{}", 10).error,
             Catch::Matchers::Contains("expected a JSON object with \"accuracy\", found \"hello\""));
  CHECK_THAT(search::run_external("sh " + d + "/range.sh", "{}", 10).error,
             Catch::Matchers::Contains("a number in [0, 1]"));

  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  search::SearchOptions o;
  o.strategy = "evolution";
  o.budget = 6;
  search::ExternalEstimator good("sh " + d + "/good.sh", 10);
  auto r = search::run_search(s, cost, good, o);
  int evaluated = 0;
  for (const auto& c : r.candidates) {
    if (!c.evaluated) continue;
    ++evaluated;
    CHECK(c.estimator == "external");
    double n = 0;
    std::istringstream in(spec::canonical_dump(spec::to_json(c.arch)) + "\n");
    for (std::string line; std::getline(in, line);) n += static_cast<double>(line.size());
    CHECK(c.val_acc == Approx(1 - 100 / (100 + n)).margin(1e-6));  // it saw this candidate's arch
  }
  CHECK(evaluated == 6);
  search::ExternalEstimator failing("sh " + d + "/fail.sh", 10);
  auto rf = search::run_search(s, cost, failing, o);
  REQUIRE(rf.candidates.size() >= 6);
  int errors = 0;
  for (const auto& c : rf.candidates) errors += !c.error.empty() && !c.evaluated;
  CHECK(errors == 6);  // each failure used an evaluation and was recorded
  CHECK(rf.best == -1);
  CHECK(spec::to_json(rf)["candidates"][0]["error"] == "exited with status 3: cannot build this arch");
}

TEST_CASE("accuracy predictor: learns a known objective, reports its held-out error, ranks unseen children",
          "[search]") {
  search::GenericEncoding enc(test::generic_decisions(6, 4), "toy.yaml", "toy");
  auto f = [](const search::Genotype& g) {  // additive with unequal weights
    double s = 0;
    for (size_t i = 0; i < g.size(); ++i) s += (static_cast<double>(i) + 1) * g[i];
    return 0.5 + s / 200;
  };
  Rng rng(8);
  std::vector<search::Genotype> xs;
  std::vector<double> ys;
  for (int i = 0; i < 80; ++i) {
    xs.push_back(enc.random(rng));
    ys.push_back(f(xs.back()));
  }
  search::AccuracyPredictor p(enc, 5, 1);
  CHECK_FALSE(p.fitted());
  auto rep = p.fit(xs, ys);
  CHECK(p.fitted());
  CHECK(rep.points == 80);
  CHECK(rep.val_points == 16);
  INFO("held-out rmse " << rep.val_rmse << " tau " << rep.val_kendall_tau);
  CHECK(rep.val_kendall_tau > 0.6);
  std::vector<double> truth, pred;
  for (int i = 0; i < 40; ++i) {
    auto g = enc.random(rng);
    truth.push_back(f(g));
    pred.push_back(p.predict(g));
    CHECK(p.uncertainty(g) >= 0);
  }
  CHECK(search::kendall_tau(pred, truth) > 0.6);
  search::AccuracyPredictor q(enc, 5, 1);  // deterministic
  q.fit(xs, ys);
  CHECK(q.predict(xs[0]) == p.predict(xs[0]));
  CHECK_THROWS_AS(q.fit({xs[0]}, {0.5}), UsageError);
}

TEST_CASE("pre-screening and the predictor estimator spare the costly estimator", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  search::SearchOptions o;
  o.strategy = "evolution";
  o.budget = 40;
  o.seed = 2;
  o.prescreen = true;
  FakeEstimator est(s);
  auto r = search::run_search(s, cost, est, o);
  int screened = 0, evaluated = 0;
  for (const auto& c : r.candidates) {
    screened += c.screened;
    evaluated += c.evaluated;
    if (c.screened) CHECK_FALSE(c.evaluated);
  }
  CHECK(evaluated == 40);
  CHECK(est.calls == 40);
  CHECK(screened > 0);
  REQUIRE(r.predictor.is_object());
  CHECK(r.predictor["screened"] == screened);
  CHECK(families::search_result_from_json(spec::to_json(r), "s.json").candidates.size() == r.candidates.size());

  // On its own: learnt from a random search (evolution's children crowd around its best, too few
  // far from them to learn the space), it ranks new children like the estimator it learnt from.
  o.strategy = "random";
  o.prescreen = false;
  FakeEstimator est2(s);
  auto rr = search::run_search(s, cost, est2, o);
  search::ArchEncoding enc(s);
  search::PredictorEstimator pe(enc, {rr}, "test", 3);
  CHECK(pe.report().points == 40);
  Rng rng(21);
  std::vector<double> a, b;
  FakeEstimator truth(s);
  for (int i = 0; i < 30; ++i) {
    auto arch = families::random_arch(s, rng);
    a.push_back(pe.score(arch).acc);
    b.push_back(truth.score(arch).acc);
  }
  INFO("tau " << search::kendall_tau(a, b));
  CHECK(search::kendall_tau(a, b) > 0.5);
}

TEST_CASE("memory and latency bounds, alone or together; fronts over every cost", "[search]") {
  auto s = space();
  search::CostFn cost = [&](const spec::Arch& a) { return families::arch_cost(s, a, 1, 10); };
  auto min_c = cost(families::min_arch(s)), max_c = cost(families::max_arch(s));
  // Memory: weights plus at least the input and the stem's output; grows with the child.
  CHECK(min_c.peak_activations >= 28 * 28 / 2);
  CHECK(max_c.memory_mib() > min_c.memory_mib());
  CHECK(max_c.memory_mib() == Approx((max_c.params + max_c.peak_activations) * 4.0 / (1 << 20)));
  search::SearchOptions o;
  o.strategy = "random";
  o.budget = 30;
  o.constraints.max_memory_mib = (min_c.memory_mib() + max_c.memory_mib()) / 2;
  o.constraints.max_latency_ms = 0.5 * (min_c.mflops() + max_c.mflops()) * 0.1;
  int calls = 0;
  o.latency_ms = [&](const spec::Arch& a) {  // a stand-in for the measurement: 0.1 ms per MFLOP
    ++calls;
    return cost(a).mflops() * 0.1;
  };
  FakeEstimator est(s);
  auto r = search::run_search(s, cost, est, o);
  int infeasible = 0;
  for (const auto& c : r.candidates) {
    if (c.feasible) {
      CHECK(c.memory_mib <= o.constraints.max_memory_mib);
      CHECK(c.latency_ms >= 0);
      CHECK(c.latency_ms <= o.constraints.max_latency_ms);
    } else {
      ++infeasible;
    }
  }
  CHECK(infeasible > 0);
  CHECK(calls <= static_cast<int>(r.candidates.size()) + 1);  // once per child (+ the smallest, up front)
  CHECK_FALSE(r.pareto_memory.empty());
  CHECK_FALSE(r.pareto_latency.empty());
  auto back = families::search_result_from_json(spec::to_json(r), "s.json");
  CHECK(back.pareto_latency == r.pareto_latency);
  CHECK(back.constraints.max_latency_ms == o.constraints.max_latency_ms);
  CHECK(back.candidates[0].memory_mib == r.candidates[0].memory_mib);
  o.constraints.max_memory_mib = min_c.memory_mib() * 0.5;
  FakeEstimator est2(s);
  CHECK_THROWS_AS(search::run_search(s, cost, est2, o), SpecError);
}

TEST_CASE("run_search on a generic space: reported costs bound it, its result round-trips, resume replays",
          "[search]") {
  // 6 decisions of 5 options; accuracy grows with the sum of the options, and so does the reported
  // parameter count: the best feasible child sits on the bound.
  search::GenericEncoding enc(test::generic_decisions(6, 5), "toy.yaml", "toy");
  struct Reporting : search::Estimator {
    std::string name() const override { return "reporting"; }
    search::Score score(const spec::Arch&) override { throw std::logic_error("not an mbconv child"); }
    search::Score score_generic(const spec::json& child) override {
      ++calls;
      int sum = 0;
      for (const auto& [k, v] : child.at("choices").items()) sum += v.get<int>();
      search::Score s;
      s.acc = sum / 24.0;
      if (report_params) s.params = 1000 * sum;
      return s;
    }
    bool report_params = true;
    int calls = 0;
  };
  search::SearchOptions o;
  o.strategy = "evolution";
  o.budget = 40;
  o.seed = 3;
  o.constraints.max_params = 12000;
  o.strategy_options.population = 8;
  o.strategy_options.sample_size = 3;
  Reporting est;
  auto r = search::run_search(enc, {}, est, o);
  CHECK(r.family == "generic");
  CHECK(r.space == "toy");
  CHECK(est.calls == 40);
  int infeasible = 0;
  for (const auto& c : r.candidates) {
    REQUIRE(c.evaluated);
    CHECK(c.hash == enc.key(enc.from_json(c.generic_arch, "r")));
    CHECK(c.feasible == (c.params <= 12000));
    infeasible += !c.feasible;
  }
  CHECK(infeasible > 0);  // the bound was met, and applied
  REQUIRE(r.best >= 0);
  CHECK(r.candidates[r.best].params <= 12000);
  CHECK(r.candidates[r.best].val_acc >= 10 / 24.0);
  for (int i : r.pareto) CHECK(r.candidates[i].feasible);
  // Through JSON: the generic children and their keys are read back.
  auto back = families::search_result_from_json(spec::to_json(r), "s.json");
  CHECK(back.family == "generic");
  REQUIRE(back.candidates.size() == r.candidates.size());
  CHECK(back.candidates[5].generic_arch == r.candidates[5].generic_arch);
  CHECK(spec::to_json(back) == spec::to_json(r));
  auto tampered = spec::to_json(r);
  auto& x0 = tampered["candidates"][0]["arch"]["choices"]["x0"];
  x0 = (x0.get<int>() + 1) % 5;  // another child under the same hash
  CHECK_THROWS_AS(families::search_result_from_json(tampered, "s.json"), SpecError);
  // Resume: the first 20 evaluations replayed (costs included), the rest estimated.
  for (const auto& c : back.candidates)
    if (c.evaluated && c.index < 20) o.replay[c.hash] = c;
  Reporting again;
  auto resumed = search::run_search(enc, {}, again, o);
  CHECK(again.calls == 20);
  CHECK(spec::to_json(resumed.candidates[r.best]) == spec::to_json(r.candidates[r.best]));
  CHECK(resumed.best == r.best);
  // A bound on a cost the estimator does not report: an error on each candidate, none feasible.
  o.replay.clear();
  o.budget = 5;
  Reporting silent;
  silent.report_params = false;
  auto none = search::run_search(enc, {}, silent, o);
  CHECK(none.best == -1);
  for (const auto& c : none.candidates)
    CHECK_THAT(c.error, Catch::Matchers::Contains("reported no \"params\""));
}

TEST_CASE("the generic example space loads, and a generic file with an mbconv key is refused", "[search]") {
  auto enc = search::generic_space_from_json(
      spec::load_document(test::src("configs/spaces/generic-example.yaml")), "generic-example.yaml");
  CHECK(enc->space_name() == "mlp-hparams");
  CHECK(enc->cardinality() == 4 * 4 * 4 * 3 * 3 * 2);
  CHECK(search::space_family(spec::load_document(test::src("configs/spaces/fmnist-mbconv.yaml"))) == "mbconv");
  spec::json j = spec::load_document(test::src("configs/spaces/generic-example.yaml"));
  j["resolution"] = {28};
  CHECK_THROWS_WITH(search::generic_space_from_json(j, "g.yaml"), Catch::Matchers::Contains("resolution"));
}

TEST_CASE("bayesian: --bo-init random children before the Gaussian process, always recorded", "[search]") {
  search::GenericEncoding enc(test::generic_decisions(4, 5), "toy.yaml", "toy");
  search::StrategyOptions o;
  o.budget = 100;  // default warm-up: max(5, min(10, 100 / 10)) = 10
  CHECK(search::strategy_options_json("bayesian", o)["init"] == 10);
  o.budget = 400;
  CHECK(search::strategy_options_json("bayesian", o)["init"] == 10);
  CHECK(search::bayesian_warmup_before_75e0437(400) == 20);  // what a file without "init" ran with
  spec::json stopped = search::strategy_options_json("bayesian", o);  // as written before 75e0437
  stopped.erase("init");
  search::StrategyOptions resumed = o;
  search::adopt_stopped_defaults("bayesian", 400, stopped, resumed);
  CHECK(resumed.bo_init == 20);
  CHECK(stopped == search::strategy_options_json("bayesian", resumed));
  o.bo_init = 3;
  CHECK(search::strategy_options_json("bayesian", o)["init"] == 3);
  auto st = search::make_bayesian(enc, o, 1);
  Rng rng(2);
  for (int i = 0; i < 5; ++i) {
    auto g = *st->ask(rng);
    CHECK(st->origin() == (i < 3 ? "random" : "expected-improvement"));
    st->tell(g, true, g[0] + 0.1 * g[1]);
  }
}

TEST_CASE("mcts: rollouts by the options' shared rewards beat the uniform rollout on a separable objective",
          "[search]") {
  // 12 unordered decisions of 5 options: 244 million children, and a tree two levels deep after 150
  // children. Each decision's option adds to the score alone, so the options' mean rewards over
  // every child point at the optimum.
  search::GenericEncoding enc(test::categorical_decisions(12, 5), "toy.yaml", "toy");
  const search::Genotype target{3, 0, 4, 1, 2, 2, 0, 3, 1, 4, 0, 2};
  auto f = [&](const search::Genotype& g) {
    double hits = 0;
    for (size_t i = 0; i < g.size(); ++i) hits += g[i] == target[i];
    return hits / static_cast<double>(g.size());
  };
  search::StrategyOptions o;
  o.budget = 150;
  double mean = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    auto mcts = search::make_strategy("mcts", enc, o);
    mean += test::drive(*mcts, enc, f, 150, seed) / 5;
  }
  // Measured: 0.77 (random search 0.56; the uniform rollout 0.62, at most 8 of 12 on any seed).
  CHECK(mean >= 0.7);
  CHECK(test::random_search_mean(enc, f, o) < 0.6);
}

TEST_CASE("mcts enumerates a small space to the end, then has nothing left", "[search]") {
  search::GenericEncoding small(test::categorical_decisions(3, 3), "small.yaml", "small");
  search::StrategyOptions o;
  auto mcts = search::make_strategy("mcts", small, o);
  int distinct = 0, asks = 0;
  test::drive(*mcts, small, [](const search::Genotype& g) { return g[0] + 0.1 * g[1]; }, 1000, 0, &distinct, &asks);
  CHECK(distinct == 27);
  CHECK(asks < 2 * 27);  // a rollout may repeat a child that the tree reaches later
  Rng rng(0);
  CHECK_FALSE(mcts->ask(rng).has_value());
}

TEST_CASE("mcts: decisions of one option do not branch the tree nor repeat a child", "[search]") {
  // x0 and x4 have one option; the three between have three: 27 children in all.
  spec::json d = test::categorical_decisions(5, 3);
  d[0]["choices"] = spec::json::array({"only"});
  d[4]["choices"] = spec::json::array({"only"});
  search::GenericEncoding enc(d, "one.yaml", "one");
  search::StrategyOptions o;
  auto mcts = search::make_strategy("mcts", enc, o);
  int distinct = 0, asks = 0;
  test::drive(*mcts, enc, [](const search::Genotype& g) { return g[1] + 0.1 * g[2]; }, 1000, 0, &distinct, &asks);
  CHECK(distinct == 27);
  CHECK(asks < 2 * 27);
  Rng rng(0);
  CHECK_FALSE(mcts->ask(rng).has_value());
}
