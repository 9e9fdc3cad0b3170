#pragma once
// nas-search's engine: strategies propose children, an estimator scores them, a context applies
// the constraints, the budget and the evaluation cache, and collects every candidate.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/rng.h"
#include "families/family.h"
#include "search/encoding.h"
#include "search/objectives.h"
#include "search/strategy.h"
#include "spec/arch.h"
#include "spec/search_result.h"
#include "spec/search_space.h"

namespace nas::dist {
class Group;
}

namespace nas::search {

struct Score {
  double acc = 0;
  double loss = 0;
  std::string error;  // non-empty: this candidate could not be scored (it still used an evaluation)
  std::string detail;  // how the estimator got the score, when it varies (e.g. "stopped after 3 of 10 epochs")
  // Costs the estimator measured or was told (an external evaluator may print "mflops", "params",
  // "memory_mib", "latency_ms"); -1: not reported. Generic spaces have no analytic cost model: their
  // constraints are checked on these, after the evaluation.
  double mflops = -1, memory_mib = -1, latency_ms = -1;
  int64_t params = -1;
};

// Scores one architecture (higher acc is better).
class Estimator {
 public:
  virtual ~Estimator() = default;
  virtual std::string name() const = 0;
  virtual Score score(const spec::Arch& arch) = 0;
  // A child of a generic space ({kind: nas.arch, space, choices}). Only estimators that do not build
  // the network can score one (the external evaluator, the predictor); the others throw UsageError.
  virtual Score score_generic(const spec::json& child);
  // A score recorded by an earlier, stopped run and replayed instead of score(): estimators with
  // state (the learning-curve one's best final accuracy) rebuild it here.
  virtual void replayed(const spec::Arch&, const Score&) {}
  // Whether a score depends on the arch alone, not on the scores before it (the learning-curve
  // estimator's early stopping compares with the best so far): then children can be scored
  // together, out of order, on several ranks.
  virtual bool order_free() const { return true; }
  // The score after `epochs` of training, for estimators that train (hyperband's resource); the
  // others throw UsageError.
  virtual Score score_at(const spec::Arch& arch, int epochs);
};

using CostFn = std::function<families::Cost(const spec::Arch&)>;
// A child's latency in ms (measured, or predicted by a latency table).
using LatencyFn = std::function<double(const spec::Arch&)>;

struct SearchOptions {
  std::string strategy = "coarse-to-fine";  // see strategy_names()
  int64_t budget = 50;                     // number of estimator calls
  double time_budget = 0;                  // seconds of search; 0: unbounded
  spec::Constraints constraints;
  // Measures a child's latency in ms (needed when constraints.max_latency_ms is set); called once
  // per distinct child.
  LatencyFn latency_ms;
  // Also record the latency of children when no latency bound is set (a table predicts it for free).
  bool latency_always = false;
  // A multi-objective search: two or three of objective_names() (search/objectives.h); empty:
  // accuracy alone. The strategy is told each child's objectives (nsga2 selects by them); the
  // result records the front over them and its hypervolume, and each candidate the hypervolume
  // after it. hv_reference: the hypervolume's reference point in the objectives' own units; empty:
  // accuracy 0 and each cost's bound, else (mbconv) the largest child's cost.
  std::vector<std::string> objectives;
  std::vector<double> hv_reference;
  uint64_t seed = 0;
  StrategyOptions strategy_options;  // its budget is set from `budget`
  // Evaluations of an earlier, stopped run of the same search (by arch hash): replayed instead of
  // re-estimated, so that a resumed search reaches the state and result of an uninterrupted one.
  std::map<std::string, spec::Candidate> replay;
  // The stopped run's total_seconds: charged to the time budget (and counted in total_seconds).
  double resumed_seconds = 0;
  // Called after each evaluation (e.g. to append a JSON line); may be empty.
  std::function<void(const spec::Candidate&)> on_evaluated;
  // Consecutive proposals without a new evaluation after which the search stops (space exhausted).
  int64_t max_idle = 2000;
  // Called with the result so far (marked interrupted) every `checkpoint_every` new evaluations, so
  // that a killed search can be resumed from it; may be empty.
  int64_t checkpoint_every = 10;
  std::function<void(const spec::SearchResult&)> on_checkpoint;
  // Pre-screening with the accuracy predictor (search/predictor.h): after `prescreen_warmup`
  // evaluations (0: max(10, budget / 5)) an MLP ensemble learns from the evaluated candidates
  // (refitted every 10 new ones), and a new feasible child whose predicted score is below the
  // median evaluated score is recorded as screened, told to the strategy with its predicted score,
  // and costs no evaluation.
  bool prescreen = false;
  int64_t prescreen_warmup = 0;
  // Pre-screening by a zero-cost proxy (search/zero_cost.h) instead of the predictor: after the
  // warm-up, a new feasible child whose proxy is below the median proxy of the evaluated children
  // is recorded as screened (estimator `prescreen_proxy_name`, its proxy as predicted_acc), told
  // to the strategy with the lowest score evaluated so far, and costs no evaluation.
  std::function<double(const Genotype&)> prescreen_proxy;
  std::string prescreen_proxy_name;
  // Makes the strategy instead of `strategy` naming one (DARTS's list of derived children).
  std::function<std::unique_ptr<Strategy>()> make_strategy;
  // A distributed search: the children that the strategy lets be scored together
  // (Strategy::ask_ahead) are shared round robin over the ranks, one each, and their scores gathered
  // on every rank, so every rank holds the same state and the result equals a one-process search's.
  // Null: one process.
  dist::Group* group = nullptr;
};

// The search over any encoding: a family's children are decoded into archs, costed analytically (cost)
// and scored by Estimator::score; generic children are scored by Estimator::score_generic, and their
// constraints apply to the costs the estimator reports (a bound on an unreported cost is an error
// for that candidate).
class SearchContext {
 public:
  SearchContext(const Encoding& enc, CostFn cost, Estimator& est, const SearchOptions& o);
  // A child asked for in the current batch, not yet scored or recorded.
  struct Proposal {
    Genotype g;
    std::string origin, key;
    bool duplicate = false;  // a candidate already, or asked earlier in this batch: a cache hit
    bool evaluate = false;   // new and feasible: takes one evaluation (replayed, or scored)
    bool screened = false;   // new and feasible, below the prescreen's threshold: no evaluation
    double predicted = 0;    // screened: the predictor's estimate, or the proxy's value
    double told = 0;         // screened: the score the strategy is told
    std::string screened_by; // screened: "predictor", or the proxy's estimator name
    spec::Candidate c;       // new ones: described (costs, feasibility)
    Score score;
    double seconds = 0;
    bool replay = false;     // evaluated by a stopped run: its score is replayed
    int scored_by = 0;       // the rank that scored it
  };
  // Describes child `g` (a repeat of `batch_keys` or of a candidate is a duplicate).
  Proposal prepare(const Genotype& g, const std::string& origin, const std::set<std::string>& batch_keys) const;
  // Scores the proposals that take an evaluation and are not replayed: every one here, or round
  // robin over the ranks of options().group, gathered on every rank.
  void score(std::vector<Proposal>& batch);
  // Records a scored proposal as a candidate (in ask order); a duplicate returns the candidate it
  // repeats.
  const spec::Candidate* record(Proposal& p);
  // The index of the candidate with key `key` (std::out_of_range if none).
  int index_of(const std::string& key) const { return by_hash_.at(key); }
  // Records a feasible `g` as screened out by the prescreen (no evaluation).
  const spec::Candidate* screen(const Genotype& g, const std::string& origin, double predicted,
                                const std::string& screened_by);
  // The genotype of candidate `index`.
  const Genotype& genotype(int index) const { return genotypes_.at(static_cast<size_t>(index)); }
  bool budget_left() const;
  int64_t evaluations() const { return evaluations_; }
  // Indices of the best `k` feasible, evaluated candidates (by val_acc, then fewer MFLOPs).
  std::vector<int> top(int k) const;
  const Encoding& encoding() const { return enc_; }
  const SearchOptions& options() const { return o_; }
  spec::SearchResult& result() { return r_; }
  const spec::SearchResult& result() const { return r_; }
  // The costs of `arch` and whether the constraints admit it (latency measured once per child).
  struct Costs {
    double mflops = 0, memory_mib = 0, latency_ms = -1;
    int64_t params = 0;
    bool feasible = true;
  };
  Costs costs(const spec::Arch& arch) const;
  // Whether the constraints admit the costs an estimator reported for a generic child; otherwise
  // fills `why` when a bounded cost, or one that is an objective, was not reported.
  bool admits_reported(const Score& s, std::string& why) const;
  // Multi-objective searches: the hypervolume's reference point, in the objectives' own units.
  const std::vector<double>& hv_reference() const { return hv_reference_; }
  // The objectives of recorded candidate c (each minimized), told to the strategy; `acc` stands
  // for its accuracy (a screened child's predicted one). Empty in single-objective searches, and
  // for a generic child that was not evaluated (it has no costs).
  Point told_point(const spec::Candidate& c, double acc) const;
  double eval_seconds() const { return eval_seconds_; }
  int64_t replayed() const { return replayed_; }
  void finish_progress() { progress_.finish(evaluations_); }

 private:
  spec::Candidate describe(const Genotype& g, const std::string& key) const;
  std::vector<double> reference_point() const;
  const Encoding& enc_;
  const ArchEncoding* arch_encoding_;  // null in generic spaces
  CostFn cost_;
  Estimator& est_;
  SearchOptions o_;
  spec::SearchResult r_;
  std::map<std::string, int> by_hash_;
  std::vector<Genotype> genotypes_;  // of each candidate
  mutable std::map<std::string, double> latency_cache_;
  std::vector<double> hv_reference_;
  std::unique_ptr<HypervolumeTracker> hv_;  // multi-objective searches
  int64_t evaluations_ = 0;
  int64_t replayed_ = 0;
  double eval_seconds_ = 0;
  double start_ = 0;
  Progress progress_;
};

// Bayesian optimization (search/bayes.cpp, LibTorch): a Gaussian process on the encoding with
// expected improvement.
std::unique_ptr<Strategy> make_bayesian(const Encoding& enc, const StrategyOptions& o, uint64_t seed);
// Multi-objective Bayesian optimization (search/bayes.cpp): one GP per objective, expected
// hypervolume improvement against StrategyOptions::hv_reference.
std::unique_ptr<Strategy> make_ehvi(const Encoding& enc, const StrategyOptions& o);
// The strategy called `name` over `enc` (the torch-free ones of search/strategy.h, "bayesian" and
// "ehvi").
std::unique_ptr<Strategy> make_any_strategy(const std::string& name, const Encoding& enc, const StrategyOptions& o,
                                            uint64_t seed);

// SpecError when not even the smallest child satisfies the constraints.
void check_satisfiable(const spec::SearchSpace& space, const CostFn& cost, const spec::Constraints& c,
                       const std::function<double(const spec::Arch&)>& latency_ms = {});

// The key of a recorded evaluation in SearchOptions::replay: the arch hash, and the fidelity when
// the search has several (hyperband scores a child once per rung).
std::string replay_key(const spec::Candidate& c);

// The part of a search's identity that the engine knows: the space (enc), the strategy and its
// options, seed, budgets, bounds and objectives. The caller adds how the candidates are scored
// (supernet, evaluator, estimator options, image counts).
spec::SearchIdentity identity_of(const Encoding& enc, const SearchOptions& o);

// Fills r's identity (identity_of; the resolved hv_reference) and interrupted, its best, fronts and
// (with objectives) multi-objective block from its candidates, and its times (`seconds` of this
// run, plus a stopped run's); with top_fidelity > 0, candidates measured at a lower fidelity make
// neither the best nor the fronts.
void finish_result(spec::SearchResult& r, const Encoding& enc, const SearchOptions& o,
                   const std::vector<double>& hv_reference, bool interrupted, double seconds, int top_fidelity = 0);

// Runs the chosen strategy and fills best, pareto and timings. Throws SpecError when no child of
// a family's space satisfies the constraints. `cost` is unused in generic spaces.
spec::SearchResult run_search(const Encoding& enc, const CostFn& cost, Estimator& est, const SearchOptions& o);
// The same over a family's space.
spec::SearchResult run_search(const spec::SearchSpace& space, const CostFn& cost, Estimator& est,
                              const SearchOptions& o);

}  // namespace nas::search
