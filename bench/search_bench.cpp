// The search engine's targets (issue 4), measured in one run; driven by scripts/bench/search.sh.
//  1. Sample efficiency: how many evaluations evolution and Bayesian optimization need to reach the
//     best accuracy random search finds in 500, per seed; the median over seeds is reported. The
//     objective is a surrogate of the real supernet: an MLP ensemble fitted on every candidate the
//     given nas.search files evaluated with inherited weights (like the NAS-Bench-301 surrogates), so
//     thousands of searches cost seconds. The bounds are those of the given searches (the last with
//     any), so that the optimum is not simply the largest child.
//  2. Strategy overhead per proposal (ask + tell, no estimator): evolution, and Bayesian
//     optimization once it holds 500 observations.
//  3. Predictor throughput: children scored per second in one batch.
//  4. The inherited estimator on a median-size child: BN recalibration on 2,000 training images,
//     then 10,000 images forwarded (the 5,000 validation images and 5,000 more training ones: the
//     same work as a 10k validation split).
// Prints one JSON object per line (a "target" field says what it is compared with).
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "app/app_data.h"
#include "core/hash.h"
#include "core/log.h"
#include "eval/evaluate.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/sampling.h"
#include "search/estimators.h"
#include "search/predictor.h"
#include "search/search.h"
#include "spec/search_result.h"
#include "supernet/checkpoint.h"
#include "surrogate.h"

using namespace nas;
using bench::emit;
using bench::evals_to_reach;
using bench::median;
using bench::SurrogateEstimator;

namespace {
int usage() {
  std::cerr << "usage: nas-bench-search --supernet CKPT --search FILE [--search FILE...] [--seeds N] [--threads N]\n"
               "       [--population N] [--sample-size N] [--mutation-prob P]   (evolution's settings)\n"
               "       [--eval-batch N]   (the inherited estimator's evaluation batch; default: the CPU default)\n";
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  std::string ckpt;
  std::vector<std::string> files;
  int seeds = 20, threads = 2;
  int eval_batch = eval::default_eval_batch(torch::kCPU);  // the inherited estimator's
  search::StrategyOptions evo;  // evolution's settings (default: nas-search's)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--supernet") ckpt = argv[++i];
    else if (a == "--search") files.push_back(argv[++i]);
    else if (a == "--seeds") seeds = std::stoi(argv[++i]);
    else if (a == "--threads") threads = std::stoi(argv[++i]);
    else if (a == "--population") evo.population = std::stoi(argv[++i]);
    else if (a == "--sample-size") evo.sample_size = std::stoi(argv[++i]);
    else if (a == "--mutation-prob") evo.mutation_prob = std::stod(argv[++i]);
    else if (a == "--eval-batch") eval_batch = std::stoi(argv[++i]);
    else return usage();
  }
  if (ckpt.empty() || files.empty()) return usage();
  try {
    set_log_level(0);  // errors only: no progress lines from the searches
    torch::set_num_threads(threads);
    auto loaded = supernet::load_supernet(ckpt);
    const auto& meta = loaded.meta;
    const spec::SearchSpace& space = meta.space;
    search::ArchEncoding enc(space);
    search::CostFn cost = [&](const spec::Arch& a) {
      return families::arch_cost(space, a, meta.in_channels, meta.num_classes);
    };

    // The surrogate: fitted on every evaluated candidate of the given searches.
    std::vector<search::Genotype> xs;
    std::vector<double> ys;
    std::set<std::string> seen;
    spec::Constraints bound;  // the last given search's bounds, when it had any
    for (const auto& f : files) {
      auto r = families::load_search_result(f);
      const auto& c = r.constraints;
      if (c.max_mflops > 0 || c.max_params > 0 || c.max_memory_mib > 0) bound = c;
      for (const auto& c : r.candidates)
        if (c.evaluated && seen.insert(c.hash).second) {
          xs.push_back(enc.encode(c.arch));
          ys.push_back(c.val_acc);
        }
    }
    search::AccuracyPredictor surrogate(enc, 5, 1);
    auto rep = surrogate.fit(xs, ys);
    emit({{"what", "surrogate"}, {"points", rep.points}, {"val_rmse", rep.val_rmse},
          {"val_kendall_tau", rep.val_kendall_tau}, {"max_mflops", bound.max_mflops},
          {"max_params", bound.max_params}, {"max_memory_mib", bound.max_memory_mib}});

    // 1. Sample efficiency (--seeds 0 skips it).
    std::vector<double> need_evo, need_bo, random_best;
    int evo_reached = 0, bo_reached = 0;
    for (int seed = 0; seed < seeds; ++seed) {
      auto run = [&](const std::string& strategy, int64_t budget) {
        search::SearchOptions o;
        o.strategy = strategy;
        o.budget = budget;
        o.seed = static_cast<uint64_t>(seed);
        o.constraints = bound;
        o.strategy_options = evo;
        SurrogateEstimator est(enc, surrogate);
        return search::run_search(space, cost, est, o);
      };
      auto rnd = run("random", 500);
      double target = rnd.candidates.at(static_cast<size_t>(rnd.best)).val_acc;
      random_best.push_back(target);
      int64_t e = evals_to_reach(run("evolution", 150), target);
      int64_t b = evals_to_reach(run("bayesian", 150), target);
      evo_reached += e <= 150;
      bo_reached += b <= 150;
      need_evo.push_back(static_cast<double>(e));
      need_bo.push_back(static_cast<double>(b));
      emit({{"what", "seed"}, {"seed", seed}, {"random_500_best", target}, {"evolution_evals", e}, {"bayesian_evals", b}});
    }
    if (seeds > 0)
      emit({{"what", "sample_efficiency"}, {"seeds", seeds}, {"random_500_best_median", median(random_best)},
          {"evolution_median_evals", median(need_evo)}, {"evolution_reached", evo_reached},
          {"bayesian_median_evals", median(need_bo)}, {"bayesian_reached", bo_reached},
          {"target", "median <= 150 evaluations (151: not reached within 150)"}});

    // 2. Overhead per proposal.
    {
      search::StrategyOptions so;
      so.budget = 1000000;
      auto evo = search::make_strategy("evolution", enc, so);
      Rng rng(7);
      double t0 = now_seconds();
      const int n = 2000;
      for (int i = 0; i < n; ++i) {
        auto g = evo->ask(rng);
        evo->tell(*g, true, rng.uniform());
      }
      double evo_ms = (now_seconds() - t0) * 1e3 / n;
      auto bo = search::make_bayesian(enc, so, 7);
      for (int i = 0; i < 500; ++i) {
        auto g = bo->ask(rng);
        bo->tell(*g, true, surrogate.predict(*g));
      }
      const int m = 10;
      t0 = now_seconds();
      for (int i = 0; i < m; ++i) {
        auto g = bo->ask(rng);
        bo->tell(*g, true, surrogate.predict(*g));
      }
      double bo_ms = (now_seconds() - t0) * 1e3 / m;
      emit({{"what", "overhead"}, {"evolution_ms_per_proposal", evo_ms}, {"bayesian_ms_per_proposal_at_500", bo_ms},
            {"target", "evolution <= 1 ms, bayesian <= 50 ms"}});
    }

    // 3. Predictor throughput.
    {
      Rng rng(11);
      std::vector<search::Genotype> pool;
      for (int i = 0; i < 100000; ++i) pool.push_back(enc.random(rng));
      surrogate.predict_many({pool.begin(), pool.begin() + 1000});  // warm-up
      double t0 = now_seconds();
      auto p = surrogate.predict_many(pool);
      double s = now_seconds() - t0;
      emit({{"what", "predictor"}, {"candidates", pool.size()}, {"seconds", s},
            {"candidates_per_s", static_cast<double>(pool.size()) / s}, {"threads", threads},
            {"target", ">= 50000 candidates/s"}});
    }

    // 4. The inherited estimator on a median-size child.
    {
      auto loaded_data = std::make_shared<const app::CheckpointData>(
          app::load_checkpoint_data(meta.train, "", 2000, meta.in_channels, meta.num_classes));
      const app::CheckpointData& d = *loaded_data;
      std::vector<int64_t> val = d.split.val;
      std::set<int64_t> calib(d.calib.begin(), d.calib.end());
      for (int64_t i : d.split.train) {
        if (val.size() >= 10000) break;
        if (!calib.count(i)) val.push_back(i);
      }
      families::Levels mid{0.5, 0.5, 0.5, 0.5, 0.5};
      spec::Arch a = families::arch_at_levels(space, mid);
      search::InheritedEstimator est(loaded.net, std::shared_ptr<const data::ImageSet>(loaded_data, &d.train), d.calib, val, d.norm, meta.train.calib_batch_size,
                                      eval_batch);
      std::vector<double> secs;
      double acc = 0;
      for (int r = 0; r < 3; ++r) {
        double t0 = now_seconds();
        acc = est.score(a).acc;
        secs.push_back(now_seconds() - t0);
      }
      // Its parts: BN recalibration alone, then scoring alone.
      loaded.net->set_active(a);
      double t0 = now_seconds();
      eval::recalibrate_bn(loaded.net, d.train, d.calib, d.norm, meta.train.calib_batch_size, torch::kCPU);
      double t1 = now_seconds();
      eval::evaluate_supernet(loaded.net, d.train, val, d.norm, eval_batch, torch::kCPU);
      double t2 = now_seconds();
      emit({{"what", "inherited_estimator"}, {"arch", families::arch_summary(a)}, {"recalibration_s", t1 - t0},
            {"scoring_s", t2 - t1},
            {"mflops", cost(a).mflops()}, {"calib_images", d.calib.size()}, {"images", val.size()},
            {"seconds_median", median(secs)}, {"acc", acc}, {"threads", threads}, {"eval_batch", eval_batch},
            {"target", "<= 5 s"}});
    }
  } catch (const std::exception& e) {
    std::cerr << "nas-bench-search: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
