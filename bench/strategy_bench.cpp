// The search strategies' targets of issue 21, measured in one run on a surrogate; driven by
// scripts/bench/strategies.sh.
//  1. Sample efficiency: the evaluations each strategy needs to reach the best accuracy random
//     search finds in --random-budget (500) evaluations, per seed (--budget + 1: not reached within
//     --budget); the median over seeds is reported, with how many seeds reached it.
//  2. Hypervolume (accuracy x MFLOPs, and accuracy x latency_ms with --latency-table): NSGA-II's
//     (and ehvi's) after --budget evaluations against random search's after --random-budget (and
//     after --budget), medians over seeds, and the seeds where each is at least random's.
//  3. Overhead per proposal (ask + tell, no estimator) of tpe, nsga2 and ehvi after 500 observations.
// The objective is a surrogate of the real scores: an MLP ensemble fitted on every evaluated
// candidate of the given nas.search files, all of one space (--space), as NAS-Bench-301 does; the
// bounds are the last given search's with any, so that the optimum is not the largest child.
// Prints one JSON object per line. For quick measurements of a change (not the bench's figures):
// --only LABEL,... runs just those strategy labels of 1 (and 2 or 3 when "hypervolume" or "overhead"
// is named); --max-mflops X replaces the bound (a second problem on the same surrogate; a bound
// above the searches' makes the surrogate score children it was not fitted near).
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/log.h"
#include "families/documents.h"
#include "families/family.h"
#include "search/predictor.h"
#include "search/search.h"
#include "spec/search_result.h"
#include "spec/search_space.h"
#include "supernet/latency_table.h"
#include "surrogate.h"

using namespace nas;
using bench::emit;
using bench::evals_to_reach;
using bench::median;
using bench::SurrogateEstimator;

namespace {
int usage() {
  std::cerr << "usage: nas-bench-strategies --space SPACE --search FILE [--search FILE...] [--latency-table LUT]\n"
               "       [--seeds N] [--budget N] [--random-budget N] [--threads N] [--only LABEL,...]\n"
               "       [--max-mflops X]\n"
               "--only: just these strategy labels of the sample efficiency, and the hypervolume or overhead\n"
               "        figures when named so (to measure a change quickly; the bench's figures come without it)\n"
               "--max-mflops: this bound instead of the searches' (a second problem on the same surrogate)\n";
  return 2;
}

struct Bench {
  spec::SearchSpace space;
  search::ArchEncoding enc;
  search::CostFn cost;
  search::AccuracyPredictor surrogate;
  spec::Constraints bound;
  std::function<double(const spec::Arch&)> latency;  // from the table, when given

  Bench(const spec::SearchSpace& s, int in_channels, int classes)
      : space(s), enc(s), surrogate(enc, 5, 1) {
    cost = [this, in_channels, classes](const spec::Arch& a) { return families::arch_cost(space, a, in_channels, classes); };
  }

  spec::SearchResult run(const std::string& strategy, int64_t budget, uint64_t seed,
                         const std::vector<std::string>& objectives = {},
                         const std::function<void(search::StrategyOptions&)>& tweak = {}) {
    search::SearchOptions o;
    o.strategy = strategy;
    o.budget = budget;
    o.seed = seed;
    o.constraints = bound;
    o.objectives = objectives;
    if (tweak) tweak(o.strategy_options);
    if (latency) {
      o.latency_ms = latency;
      o.latency_always = true;
    }
    SurrogateEstimator est(enc, surrogate);
    return search::run_search(enc, cost, est, o);
  }
};

// Milliseconds per ask + tell of a strategy that has been told 500 surrogate scores (two objectives:
// accuracy and MFLOPs), averaged over the next 50 proposals; the surrogate and the cost model are
// not timed.
double ms_per_proposal(Bench& b, const std::string& name) {
  search::StrategyOptions so;
  so.budget = 1000000;
  auto strategy = search::make_any_strategy(name, b.enc, so, 0);
  Rng rng(7);
  double timed = 0;
  auto step = [&] {
    double t0 = now_seconds();
    auto g = strategy->ask(rng);
    timed += now_seconds() - t0;
    const double acc = b.surrogate.predict(*g);
    std::vector<double> objectives = {-acc, b.cost(b.enc.decode(*g)).mflops()};
    t0 = now_seconds();
    strategy->tell(*g, true, acc, std::move(objectives));
    timed += now_seconds() - t0;
  };
  for (int i = 0; i < 500; ++i) step();
  const int n = 50;
  timed = 0;
  for (int i = 0; i < n; ++i) step();
  return timed * 1e3 / n;
}
std::set<std::string> split_labels(const std::string& list) {
  std::set<std::string> labels;
  size_t start = 0;
  for (size_t comma; (comma = list.find(',', start)) != std::string::npos; start = comma + 1)
    labels.insert(list.substr(start, comma - start));
  labels.insert(list.substr(start));
  return labels;
}
}  // namespace

int main(int argc, char** argv) {
  std::string space_file, lut;
  std::vector<std::string> files;
  int seeds = 20, threads = 2;
  int64_t budget = 150, random_budget = 500;
  std::set<std::string> only;
  double max_mflops = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--space") space_file = argv[++i];
    else if (a == "--search") files.push_back(argv[++i]);
    else if (a == "--latency-table") lut = argv[++i];
    else if (a == "--seeds") seeds = std::stoi(argv[++i]);
    else if (a == "--budget") budget = std::stoll(argv[++i]);
    else if (a == "--random-budget") random_budget = std::stoll(argv[++i]);
    else if (a == "--threads") threads = std::stoi(argv[++i]);
    else if (a == "--only") only = split_labels(argv[++i]);
    else if (a == "--max-mflops") max_mflops = std::stod(argv[++i]);
    else return usage();
  }
  if (space_file.empty() || files.empty()) return usage();
  try {
    set_log_level(0);
    torch::set_num_threads(threads);
    // 1. Sample efficiency (the labels are checked against --only before the surrogate is fitted).
    // Each strategy with nas-search's defaults, and the settings under review beside them.
    using Tweak = std::function<void(search::StrategyOptions&)>;
    struct Variant {
      std::string label, strategy;
      Tweak tweak;
    };
    const std::vector<Variant> strategies = {
        {"evolution", "evolution", {}},
        {"bayesian", "bayesian", {}},
        {"bayesian-init5", "bayesian", [](search::StrategyOptions& o) { o.bo_init = 5; }},
        {"bayesian-init20", "bayesian", [](search::StrategyOptions& o) { o.bo_init = 20; }},  // the old default
        {"tpe", "tpe", {}},
        {"tpe-independent", "tpe", [](search::StrategyOptions& o) { o.tpe_multivariate = false; }},
        {"tpe-startup5", "tpe", [](search::StrategyOptions& o) { o.tpe_startup = 5; }},
        {"hill-climbing", "hill-climbing", {}},
        {"reinforce", "reinforce", {}},
        {"mcts", "mcts", {}},
        {"mcts-c0", "mcts", [](search::StrategyOptions& o) { o.uct_c = 0; }},
        {"mcts-t0.05", "mcts", [](search::StrategyOptions& o) { o.mast_temperature = 0.05; }},
        {"mcts-t0.2", "mcts", [](search::StrategyOptions& o) { o.mast_temperature = 0.2; }},
        {"coarse-to-fine", "coarse-to-fine", {}},
        {"grid", "grid", {}},
        {"random", "random", {}}};
    std::set<std::string> labels = {"hypervolume", "overhead"};
    for (const auto& v : strategies) labels.insert(v.label);
    for (const auto& l : only)
      if (!labels.count(l)) throw std::invalid_argument("--only: no figure or strategy label " + l);
    Bench b(families::load_search_space(space_file), 1, 10);
    std::vector<search::Genotype> xs;
    std::vector<double> ys;
    std::set<std::string> seen;
    for (const auto& f : files) {
      auto r = families::load_search_result(f);
      const auto& c = r.constraints;
      if (c.max_mflops > 0 || c.max_params > 0 || c.max_memory_mib > 0) b.bound = c;
      for (const auto& k : r.candidates)
        if (k.evaluated && seen.insert(k.hash).second) {
          xs.push_back(b.enc.encode(k.arch));
          ys.push_back(k.val_acc);
        }
    }
    if (max_mflops > 0) b.bound.max_mflops = max_mflops;
    auto rep = b.surrogate.fit(xs, ys);
    int unordered = 0;
    for (const auto& d : b.enc.decisions()) unordered += !d.ordered;
    emit({{"what", "surrogate"}, {"space", b.space.name}, {"decisions", b.enc.size()}, {"unordered", unordered},
          {"points", rep.points}, {"val_rmse", rep.val_rmse}, {"val_kendall_tau", rep.val_kendall_tau},
          {"max_mflops", b.bound.max_mflops}, {"max_params", b.bound.max_params}});
    if (!lut.empty()) {
      auto table = std::make_shared<supernet::LatencyTable>(supernet::load_latency_table(lut));
      const spec::SearchSpace sp = b.space;
      b.latency = [table, sp, lut](const spec::Arch& a) { return table->predict_ms(sp, a, lut); };
    }

    auto wanted = [&](const std::string& label) { return only.empty() || only.count(label) > 0; };
    const bool efficiency =
        std::any_of(strategies.begin(), strategies.end(), [&](const Variant& v) { return wanted(v.label); });
    std::map<std::string, std::vector<double>> need;
    std::vector<double> targets;
    for (int seed = 0; efficiency && seed < seeds; ++seed) {
      const auto s = static_cast<uint64_t>(seed);
      auto rnd = b.run("random", random_budget, s + 1000);
      const double target = rnd.candidates.at(static_cast<size_t>(rnd.best)).val_acc;
      targets.push_back(target);
      spec::json line = {{"what", "seed"}, {"seed", seed}, {"random_best", target}};
      for (const auto& v : strategies) {
        if (!wanted(v.label)) continue;
        const int64_t e = evals_to_reach(b.run(v.strategy, budget, s, {}, v.tweak), target);
        need[v.label].push_back(static_cast<double>(e));
        line[v.label] = e;
      }
      emit(line);
    }
    spec::json eff = {{"what", "sample_efficiency"}, {"seeds", seeds}, {"budget", budget},
                      {"random_budget", random_budget}, {"random_best_median", median(targets)}};
    for (const auto& [label, v] : need) {
      eff[label + "_median_evals"] = median(v);
      eff[label + "_reached"] = std::count_if(v.begin(), v.end(), [&](double e) { return e <= budget; });
    }
    if (efficiency) emit(eff);

    // 2. Hypervolume.
    std::vector<std::vector<std::string>> pairs = {{"accuracy", "mflops"}};
    if (b.latency) pairs.push_back({"accuracy", "latency_ms"});
    if (!wanted("hypervolume")) pairs.clear();
    for (const auto& objectives : pairs) {
      // NSGA-II with nas-search's defaults (population 10) and, as levers, without the extremes in its
      // first population (random children only, as before d354382) and at populations 20 (the
      // default before 2026-12-08) and 40; and the multi-objective Bayesian strategy (ehvi).
      const std::vector<Variant> variants = {
          {"nsga2", "nsga2", {}},
          {"nsga2-random-start", "nsga2", [](search::StrategyOptions& so) { so.nsga2_extremes = false; }},
          {"nsga2-pop20", "nsga2", [](search::StrategyOptions& so) { so.nsga2_population = 20; }},
          {"nsga2-pop40", "nsga2", [](search::StrategyOptions& so) { so.nsga2_population = 40; }},
          {"ehvi", "ehvi", {}}};
      std::vector<std::vector<double>> hvs(variants.size());  // each variant's, per seed
      std::vector<int> at_least(variants.size(), 0);
      std::vector<double> random_long, random_short;
      for (int seed = 0; seed < seeds; ++seed) {
        const auto s = static_cast<uint64_t>(seed);
        const double rl = b.run("random", random_budget, s + 1000, objectives).multi.hypervolume;
        for (size_t v = 0; v < variants.size(); ++v) {
          hvs[v].push_back(b.run(variants[v].strategy, budget, s, objectives, variants[v].tweak).multi.hypervolume);
          at_least[v] += hvs[v].back() >= rl;
        }
        random_long.push_back(rl);
        random_short.push_back(b.run("random", budget, s, objectives).multi.hypervolume);
      }
      spec::json hv = {{"what", "hypervolume"},
                       {"objectives", objectives},
                       {"seeds", seeds},
                       {"budget", budget},
                       {"nsga2_median", median(hvs[0])},
                       {"random_long_median", median(random_long)},
                       {"random_median", median(random_short)},
                       {"nsga2_at_least_random_long", at_least[0]},
                       {"ratio_median", median(hvs[0]) / median(random_long)},
                       {"target", "NSGA-II after budget >= random after random_budget"}};
      for (size_t v = 1; v < variants.size(); ++v) {
        hv[variants[v].label + "_ratio_median"] = median(hvs[v]) / median(random_long);
        hv[variants[v].label + "_at_least_random_long"] = at_least[v];
      }
      emit(hv);
    }

    // 3. Overhead per proposal at 500 observations.
    if (!wanted("overhead")) return 0;
    spec::json overhead = {{"what", "overhead"}, {"observations", 500},
                           {"target", "tpe and nsga2 <= 20 ms per proposal"}};
    for (const std::string name : {"tpe", "nsga2", "ehvi"})
      overhead[name + "_ms_per_proposal"] = ms_per_proposal(b, name);
    emit(overhead);
  } catch (const std::exception& e) {
    std::cerr << "nas-bench-strategies: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
