#pragma once
// Search strategies as ask/tell state machines over genotypes (search/encoding.h). The driver asks
// for a child, decides whether it is feasible (constraints), scores it (or takes the cached score)
// and tells the strategy; a strategy never sees architectures, estimators or constraints, so every
// strategy works with every space family and every estimator.
//
// Everything a strategy does is a function of its options, the RNG passed to ask() and the
// sequence of tell()s. nas-search's --resume relies on this: it replays a stopped search from its
// recorded evaluations and reaches the same state as an uninterrupted run.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "search/encoding.h"

namespace nas::search {

struct StrategyOptions {
  // evolution (regularized / aging evolution)
  int population = 20;
  int sample_size = 10;  // half the population: strong selection suits budgets of 100-200 (docs/PERFORMANCE.md)
  double mutation_prob = 0.1;  // per decision; also coarse-to-fine's fine phase and hill climbing
  bool crossover = false;
  // nsga2: its population (smaller than evolution's: docs/PERFORMANCE.md, "Search strategies
  // again"); the first starts with the space's extremes (Encoding::extremes)
  int nsga2_population = 10;
  bool nsga2_extremes = true;
  // coarse-to-fine
  int top_k = 3;
  int64_t budget = 50;  // the evaluation budget (coarse-to-fine spends at most half on its grid)
  // REINFORCE
  double rl_lr = 0.1;
  double rl_baseline_decay = 0.9;
  double rl_entropy = 0.0;
  // Monte Carlo tree search
  double uct_c = 0.5;  // exploration constant, in units of the reward's observed range
  double mast_temperature = 0.1;  // of the rollout's Gibbs sampling, in the same units
  // hill climbing
  int restarts = 1000;  // at most this many restarts
  // bayesian and ehvi (search/bayes.cpp): random children before the GP; 0: max(5, min(10, budget / 10))
  int64_t bo_init = 0;
  // Multi-objective strategies (ehvi): the search's hypervolume reference point, minimized as the
  // objectives are told (search/objectives.h); set by the driver. Empty: ehvi places it itself.
  std::vector<double> hv_reference;
  // tpe (search/tpe.cpp): Optuna's defaults
  int64_t tpe_startup = 10;      // random children before the densities (feasible ones)
  double tpe_gamma = 0.1;        // the good group: the best ceil(gamma * n) observations, at most 25
  int tpe_candidates = 24;       // samples from the good density per proposal
  bool tpe_multivariate = true;  // one joint density over the decisions (false: one per decision)
  // hyperband (search/hyperband.h): the resource in epochs, from hb_min_epochs to hb_max_epochs,
  // and the halving rate
  int hb_min_epochs = 1;
  int hb_max_epochs = 9;
  int hb_eta = 3;
  // darts (search/darts.h; nas-search runs the relaxation, then proposes its derived children)
  int64_t darts_steps = 300;
  int darts_batch = 64;
  bool darts_second_order = false;
  double darts_alpha_lr = 3e-3;
  double darts_w_lr = 0.01;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // The next child to score; nullopt when the strategy has nothing left to propose.
  virtual std::optional<Genotype> ask(Rng& rng) = 0;
  // The outcome of the child last asked for: `feasible` false when it violates a constraint (it
  // then has no score). Every ask() is followed by exactly one tell() for the same genotype.
  virtual void tell(const Genotype& g, bool feasible, double score) = 0;
  // tell() with the child's objectives (search/objectives.h: each minimized, accuracy negated),
  // as nas-search --objectives names them; empty in a single-objective search. The driver calls
  // this one; the multi-objective strategies read the vector as told_objectives() in tell().
  void tell(const Genotype& g, bool feasible, double score, std::vector<double> objectives) {
    objectives_ = std::move(objectives);
    tell(g, feasible, score);
  }
  // Whether the next ask() may come before the tells of the children asked since the last tell
  // (`pending_feasible` of them will be told feasible, the others infeasible) without changing
  // what any ask returns: then the driver scores those children together (in parallel over the
  // ranks of a distributed search) and tells them in ask order, and the search is the same as one
  // that told each child before the next ask. False by default: the next child depends on the
  // last score (evolution after its first population, hill climbing, REINFORCE, MCTS, Bayesian).
  virtual bool ask_ahead(int64_t pending_feasible) const {
    (void)pending_feasible;
    return false;
  }
  // How the child last asked for came about ("coarse", "mutation", "random", ...), for the record.
  const std::string& origin() const { return origin_; }

 protected:
  const std::vector<double>& told_objectives() const { return objectives_; }
  std::string origin_;

 private:
  std::vector<double> objectives_;
};

// The random children before the Bayesian strategy's GP: bo_init, or by default
// max(5, min(10, budget / 10)); nas.search records it as "init". Files written before 75e0437 do
// not, and their default was max(5, min(20, budget / 5)): a resumed search takes that.
int64_t bayesian_warmup(const StrategyOptions& o);
int64_t bayesian_warmup_before_75e0437(int64_t budget);

// The settings that shape `strategy`'s proposals, as JSON (recorded in nas.search).
spec::json strategy_options_json(const std::string& strategy, const StrategyOptions& o);

// --resume: the settings a stopped search's file predates are the ones it ran with. Sets them in `o`
// and records them in `stopped` (its strategy_options) so that the two compare equal: bayesian's
// warm-up before 75e0437 (unless --bo-init set one), nsga2 without the extremes before 1a47da2
// (d354382's files, of one session's benchmarks, ran with them but do not say so).
void adopt_stopped_defaults(const std::string& strategy, int64_t budget, spec::json& stopped, StrategyOptions& o);

// Names accepted by make_strategy; "bayesian" and "ehvi" are provided by the LibTorch part
// (make_any_strategy, search/search.h).
const std::vector<std::string>& strategy_names();
// Torch-free strategies: random, grid, coarse-to-fine, evolution, hill-climbing, reinforce, mcts, tpe,
// nsga2.
std::unique_ptr<Strategy> make_strategy(const std::string& name, const Encoding& enc, const StrategyOptions& o);
// The tree-structured Parzen estimator (search/tpe.cpp).
std::unique_ptr<Strategy> make_tpe(const Encoding& enc, const StrategyOptions& o);
// NSGA-II over the objectives the driver tells (search/nsga2.cpp).
std::unique_ptr<Strategy> make_nsga2(const Encoding& enc, const StrategyOptions& o);
// Proposes `children` in order, then nothing: the first with origin `first_origin`, the others
// with `origin` (DARTS's derived child, then the next most likely ones).
std::unique_ptr<Strategy> make_list_strategy(const std::string& name, std::vector<Genotype> children,
                                             const std::string& first_origin, const std::string& origin);

}  // namespace nas::search
