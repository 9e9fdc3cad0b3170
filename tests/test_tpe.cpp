// Categorical decisions in generic spaces, and the tree-structured Parzen estimator.
#include <cmath>
#include <set>

#include "catch.h"
#include "core/error.h"
#include "search/encoding.h"
#include "search/strategy.h"
#include "search_helpers.h"

using namespace nas;

namespace {
std::string spec_error(const char* decisions) {
  try {
    search::GenericEncoding(spec::json::parse(decisions), "s.yaml", "toy");
  } catch (const SpecError& e) {
    return e.what();
  }
  return "no error";
}

// Proposals of `st` with no tell in between (the strategy's state stays as it is).
std::vector<search::Genotype> proposals(search::Strategy& st, int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<search::Genotype> out;
  for (int i = 0; i < n; ++i) out.push_back(*st.ask(rng));
  return out;
}

// A categorical table like a tabular benchmark's: each option of each decision has a value, and
// each pair of neighbouring decisions a value for every pair of options (interactions), all drawn
// from a seeded generator.
struct Table {
  int n, k;
  std::vector<double> single, pair;
  Table(int decisions, int options, uint64_t seed) : n(decisions), k(options) {
    Rng rng(seed);
    for (int i = 0; i < n * k; ++i) single.push_back(rng.uniform());
    for (int i = 0; i < (n - 1) * k * k; ++i) pair.push_back(rng.uniform());
  }
  double operator()(const search::Genotype& g) const {
    double v = 0;
    for (int j = 0; j < n; ++j) v += single[static_cast<size_t>(j * k + g[static_cast<size_t>(j)])];
    for (int j = 0; j + 1 < n; ++j)
      v += 2 * pair[static_cast<size_t>((j * k + g[static_cast<size_t>(j)]) * k + g[static_cast<size_t>(j + 1)])];
    return v;
  }
};
}  // namespace

TEST_CASE("generic decisions: numbers are ordered, strings and booleans are categories, `ordered` overrides", "[tpe]") {
  search::GenericEncoding enc(spec::json::parse(R"([{"name": "lr", "choices": [0.1, 0.01, 0.001]},
                                                    {"name": "act", "choices": ["relu", "gelu", "tanh", "silu"]},
                                                    {"name": "bn", "choices": [true, false]},
                                                    {"name": "mixed", "choices": [1, "two"]},
                                                    {"name": "size", "choices": ["s", "m", "l"], "ordered": true},
                                                    {"name": "seed", "choices": [3, 1, 2], "ordered": false}])"),
                              "s.yaml", "toy");
  std::vector<bool> ordered;
  for (const auto& d : enc.decisions()) ordered.push_back(d.ordered);
  CHECK(ordered == std::vector<bool>{true, false, false, false, true, false});
  // The canonical form writes every `ordered` out, and the hash sees it.
  spec::json canon = enc.canonical_json();
  CHECK(canon["decisions"][1]["ordered"] == false);
  CHECK(canon["decisions"][0]["ordered"] == true);
  CHECK(canon["family"] == "generic");
  search::GenericEncoding again(canon["decisions"], "c.json", "toy");
  CHECK(again.space_hash() == enc.space_hash());
  spec::json flipped = canon["decisions"];
  flipped[1]["ordered"] = true;
  CHECK(search::GenericEncoding(flipped, "f.json", "toy").space_hash() != enc.space_hash());
  // A category's neighbours are every other option; an ordered decision's, the options beside it.
  std::set<int> act_moves, lr_moves;
  for (const auto& n : enc.neighbours({0, 0, 0, 0, 0, 0})) {
    if (n[1] != 0) act_moves.insert(n[1]);
    if (n[0] != 0) lr_moves.insert(n[0]);
  }
  CHECK(act_moves == std::set<int>{1, 2, 3});
  CHECK(lr_moves == std::set<int>{1});
  // Mutations of a category jump to any other option; an ordered one steps.
  Rng rng(5);
  std::set<int> act_from_0, lr_from_0;
  for (int i = 0; i < 400; ++i) {
    auto m = enc.mutate({0, 0, 0, 0, 0, 0}, rng, 0.5);
    act_from_0.insert(m[1]);
    lr_from_0.insert(m[0]);
  }
  CHECK(act_from_0 == std::set<int>{0, 1, 2, 3});
  CHECK(lr_from_0 == std::set<int>{0, 1});
  CHECK_THAT(spec_error(R"([{"name": "a", "choices": [1, 2], "ordered": "yes"}])"),
             Catch::Matchers::Contains("ordered"));
}

TEST_CASE("tpe: a random startup, then the densities' proposals, never one told before", "[tpe]") {
  search::GenericEncoding enc(test::categorical_decisions(3, 3), "s.yaml", "toy");
  search::StrategyOptions o;
  o.tpe_startup = 5;
  auto st = search::make_tpe(enc, o);
  CHECK(st->name() == "tpe");
  Rng rng(1);
  for (int i = 0; i < 8; ++i) {
    CHECK(st->ask_ahead(0) == (i < 5));
    CHECK(st->ask_ahead(5 - i) == false);
    auto g = st->ask(rng);
    REQUIRE(g);
    CHECK(st->origin() == (i < 5 ? "random" : "tpe"));
    st->tell(*g, true, 0.1 * i);
  }
  // All 27 children in 27 proposals: no proposal repeats a told child.
  search::StrategyOptions small;
  small.tpe_startup = 3;
  for (bool multivariate : {true, false}) {
    INFO("multivariate " << multivariate);
    small.tpe_multivariate = multivariate;
    auto t = search::make_tpe(enc, small);
    int distinct = 0, asks = 0;
    test::drive(*t, enc, [](const search::Genotype& g) { return g[0] + 0.1 * g[1]; }, 27, 2, &distinct, &asks);
    CHECK(distinct == 27);
    CHECK(asks == 27);
  }
}

TEST_CASE("tpe and nsga2 propose the same children asked in a batch as asked one at a time", "[tpe]") {
  // The driver asks ahead while ask_ahead() allows, then tells in ask order; the children must be
  // those of asking and telling one at a time (a pending child must not be proposed twice).
  search::GenericEncoding enc(test::categorical_decisions(2, 3), "s.yaml", "toy");  // 9 children
  search::StrategyOptions o;
  o.tpe_startup = 6;
  o.nsga2_population = 6;
  for (const std::string name : {"tpe", "nsga2"}) {
    INFO(name);
    auto single = search::make_strategy(name, enc, o), batched = search::make_strategy(name, enc, o);
    Rng r1(5), r2(5);
    std::vector<search::Genotype> one, many, pending;
    for (int i = 0; i < 6; ++i) {
      auto g = *single->ask(r1);
      one.push_back(g);
      single->tell(g, true, g[0]);
    }
    while (batched->ask_ahead(static_cast<int64_t>(pending.size())) || pending.empty()) pending.push_back(*batched->ask(r2));
    for (const auto& g : pending) batched->tell(g, true, g[0]);
    many = pending;
    CHECK(many.size() == 6);
    CHECK(many == one);
    CHECK(std::set<search::Genotype>(many.begin(), many.end()).size() == 6);
  }
}

TEST_CASE("tpe on ordered decisions: Gaussian kernels put proposals near the good options", "[tpe]") {
  // Numbers are ordered: the score peaks at option 3 of 0..6 for every decision.
  search::GenericEncoding enc(test::generic_decisions(3, 7), "s.yaml", "toy");
  for (const auto& d : enc.decisions()) REQUIRE(d.ordered);
  auto score = [](const search::Genotype& g) {
    double v = 0;
    for (int x : g) v -= std::abs(x - 3);
    return v;
  };
  search::StrategyOptions o;
  auto st = search::make_tpe(enc, o);
  Rng rng(2);
  for (int i = 0; i < 80; ++i) {
    auto g = enc.random(rng);
    st->tell(g, true, score(g));
  }
  // Options 2-4 in every decision: 27 of the 343 children, 8% by chance. The proposals are
  // distinct (no tells in between), so at most 27 of them can be near.
  int near = 0;
  for (const auto& g : proposals(*st, 20, 3))
    near += std::abs(g[0] - 3) <= 1 && std::abs(g[1] - 3) <= 1 && std::abs(g[2] - 3) <= 1;
  INFO(near << " of 20 proposals within one option of the peak in every decision");
  CHECK(near >= 10);
}

TEST_CASE("tpe: the good group's options are proposed, infeasible children are avoided", "[tpe]") {
  // 4 categories of 5 options: x0 = o0 is infeasible, and the score grows with x1's option index
  // (which TPE cannot know: the options are categories).
  search::GenericEncoding enc(test::categorical_decisions(4, 5), "s.yaml", "toy");
  for (bool multivariate : {true, false}) {
    INFO("multivariate " << multivariate);
    search::StrategyOptions o;
    o.tpe_multivariate = multivariate;
    auto st = search::make_tpe(enc, o);
    Rng rng(3);
    for (int i = 0; i < 60; ++i) {
      auto g = enc.random(rng);
      st->tell(g, g[0] != 0, g[1] / 4.0);
    }
    int x0_infeasible = 0, x1_best = 0;
    const auto ps = proposals(*st, 40, 9);
    for (const auto& g : ps) {
      x0_infeasible += g[0] == 0;
      x1_best += g[1] == 4;
    }
    INFO("x0 infeasible " << x0_infeasible << ", x1 best " << x1_best << " of 40");
    CHECK(x0_infeasible <= 4);  // chance: 8 of 40
    CHECK(x1_best >= 16);       // chance: 8 of 40
  }
}

TEST_CASE("tpe: the multivariate densities model decisions jointly", "[tpe]") {
  // Good children pair x0 and x1 as (o0, o0) or (o4, o4); the crossed pairs (o0, o4) and (o4, o0)
  // are poor. Each decision alone looks the same in both groups, so only a joint density tells
  // the pairs apart.
  search::GenericEncoding enc(test::categorical_decisions(4, 5), "s.yaml", "toy");
  search::StrategyOptions o;
  o.tpe_gamma = 10.0 / 60.0;  // the ten good ones
  auto joint = search::make_tpe(enc, o);
  Rng rng(4);
  for (int i = 0; i < 60; ++i) {
    search::Genotype g = enc.random(rng);
    const int kind = i % 6, turn = (i / 6) % 2;  // 0: a good pair; 1, 2: crossed pairs; 3-5: anything
    if (kind < 3) {
      g[0] = turn == 0 ? 0 : 4;
      g[1] = (kind == 0) == (turn == 0) ? 0 : 4;
    }
    const double score = kind == 0 ? 1.0 : kind < 3 ? 0.0 : 0.5;
    joint->tell(g, true, score);
  }
  // The joint density keeps both good pairs and does not cross them (by chance, 4 in 100 would be
  // each pair).
  int zeros = 0, fours = 0, crossed = 0;
  for (const auto& g : proposals(*joint, 100, 6)) {
    zeros += g[0] == 0 && g[1] == 0;
    fours += g[0] == 4 && g[1] == 4;
    crossed += (g[0] == 0 && g[1] == 4) || (g[0] == 4 && g[1] == 0);
  }
  INFO("joint: " << zeros << " (o0, o0), " << fours << " (o4, o4), " << crossed << " crossed of 100");
  CHECK(zeros >= 8);
  CHECK(fours >= 8);
  CHECK(crossed <= 4);  // half of chance
}

TEST_CASE("tpe beats random search on a categorical table, and is deterministic", "[tpe]") {
  search::GenericEncoding enc(test::categorical_decisions(6, 5), "s.yaml", "toy");
  Table table(6, 5, 17);
  search::StrategyOptions o;
  o.budget = 60;
  const double random_mean = test::random_search_mean(enc, table, o);
  double tpe_mean = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto st = search::make_tpe(enc, o);
    tpe_mean += test::drive(*st, enc, table, 60, seed) / 10;
  }
  INFO("tpe " << tpe_mean << " random " << random_mean);
  CHECK(tpe_mean > random_mean);
  auto a = search::make_tpe(enc, o), b = search::make_tpe(enc, o);
  CHECK(test::drive(*a, enc, table, 60, 3) == test::drive(*b, enc, table, 60, 3));
}
