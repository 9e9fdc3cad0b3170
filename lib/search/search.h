#pragma once
// nas-search's engine: strategies propose children, an estimator scores them, a context applies
// the constraints, the budget and the evaluation cache, and collects every candidate.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/rng.h"
#include "spec/arch.h"
#include "spec/search_result.h"
#include "spec/search_space.h"
#include "supernet/cost.h"

namespace nas::search {

struct Score {
  double acc = 0;
  double loss = 0;
};

// Scores one architecture (higher acc is better).
class Estimator {
 public:
  virtual ~Estimator() = default;
  virtual std::string name() const = 0;
  virtual Score score(const spec::Arch& arch) = 0;
};

using CostFn = std::function<supernet::Cost(const spec::Arch&)>;

struct SearchOptions {
  std::string strategy = "coarse-to-fine";  // or "random"
  int64_t budget = 50;                     // number of estimator calls
  spec::Constraints constraints;
  uint64_t seed = 0;
  double mutation_prob = 0.3;  // per decision, fine phase
  int top_k = 3;               // parents of the fine phase
  // Called after each evaluation (e.g. to append a JSON line); may be empty.
  std::function<void(const spec::Candidate&)> on_evaluated;
};

const std::vector<std::string>& strategy_names();

class SearchContext {
 public:
  SearchContext(const spec::SearchSpace& space, CostFn cost, Estimator& est, const SearchOptions& o);
  // Records `arch` as a candidate (once per hash) and scores it when feasible and budget is left.
  // Returns the candidate, or nullptr when the budget is spent and the arch is new.
  const spec::Candidate* propose(const spec::Arch& arch, const std::string& origin);
  bool feasible(const spec::Arch& arch) const;
  bool budget_left() const { return evaluations_ < o_.budget; }
  int64_t evaluations() const { return evaluations_; }
  // Indices of the best `k` feasible, evaluated candidates (by val_acc, then fewer MFLOPs).
  std::vector<int> top(int k) const;
  const spec::SearchSpace& space() const { return space_; }
  const SearchOptions& options() const { return o_; }
  spec::SearchResult& result() { return r_; }
  double eval_seconds() const { return eval_seconds_; }
  void finish_progress() { progress_.finish(evaluations_); }

 private:
  const spec::SearchSpace& space_;
  CostFn cost_;
  Estimator& est_;
  SearchOptions o_;
  spec::SearchResult r_;
  std::map<std::string, int> by_hash_;
  int64_t evaluations_ = 0;
  double eval_seconds_ = 0;
  Progress progress_;
};

// Uniform random children (rejection-sampled to satisfy the constraints).
void random_search(SearchContext& ctx, Rng& rng);
// BigNAS: a coarse grid over global settings (resolution, depth, width, expand, kernel levels), then
// mutations of the best candidates.
void coarse_to_fine(SearchContext& ctx, Rng& rng);

// SpecError when not even the smallest child satisfies the constraints.
void check_satisfiable(const spec::SearchSpace& space, const CostFn& cost, const spec::Constraints& c);

// Runs the chosen strategy and fills best, pareto and timings. Throws SpecError when no child of
// the space satisfies the constraints.
spec::SearchResult run_search(const spec::SearchSpace& space, const CostFn& cost, Estimator& est,
                              const SearchOptions& o);

}  // namespace nas::search
