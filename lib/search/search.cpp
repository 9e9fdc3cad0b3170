#include "search/search.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "supernet/sampling.h"

namespace nas::search {

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> n = {"coarse-to-fine", "random"};
  return n;
}

SearchContext::SearchContext(const spec::SearchSpace& space, CostFn cost, Estimator& est, const SearchOptions& o)
    : space_(space), cost_(std::move(cost)), est_(est), o_(o), progress_("search", o.budget, "eval") {}

bool SearchContext::feasible(const spec::Arch& a) const {
  auto c = cost_(a);
  return o_.constraints.admits(c.mflops(), c.params);
}

const spec::Candidate* SearchContext::propose(const spec::Arch& arch, const std::string& origin) {
  std::string h = spec::arch_hash(arch);
  auto it = by_hash_.find(h);
  if (it != by_hash_.end()) {
    ++r_.cache_hits;
    return &r_.candidates[it->second];
  }
  spec::Candidate c;
  c.arch = arch;
  c.hash = h;
  auto cost = cost_(arch);
  c.mflops = cost.mflops();
  c.params = cost.params;
  c.feasible = o_.constraints.admits(c.mflops, c.params);
  c.origin = origin;
  c.estimator = est_.name();
  if (c.feasible) {
    if (!budget_left()) return nullptr;
    if (interrupt_requested()) throw Interrupted("search interrupted after " + std::to_string(evaluations_) + " evaluations");
    double t0 = now_seconds();
    Score s = est_.score(arch);
    c.eval_seconds = now_seconds() - t0;
    eval_seconds_ += c.eval_seconds;
    c.val_acc = s.acc;
    c.val_loss = s.loss;
    c.evaluated = true;
    ++evaluations_;
    char extra[128];
    std::snprintf(extra, sizeof extra, "%s acc %.4f %.2f MFLOPs", origin.c_str(), s.acc, c.mflops);
    progress_.update(evaluations_, extra);
    log_debug("candidate " + h + " " + spec::arch_summary(arch) + ": " + extra);
  }
  c.index = static_cast<int>(r_.candidates.size());
  by_hash_[h] = c.index;
  r_.candidates.push_back(c);
  if (c.evaluated && o_.on_evaluated) o_.on_evaluated(c);
  return &r_.candidates.back();
}

std::vector<int> SearchContext::top(int k) const {
  std::vector<int> idx;
  for (const auto& c : r_.candidates)
    if (c.feasible && c.evaluated) idx.push_back(c.index);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) {
    const auto& x = r_.candidates[a];
    const auto& y = r_.candidates[b];
    if (x.val_acc != y.val_acc) return x.val_acc > y.val_acc;
    if (x.mflops != y.mflops) return x.mflops < y.mflops;
    return a < b;
  });
  if (static_cast<int>(idx.size()) > k) idx.resize(k);
  return idx;
}

void random_search(SearchContext& ctx, Rng& rng) {
  int misses = 0;
  while (ctx.budget_left() && misses < 1000) {
    spec::Arch a = supernet::random_arch(ctx.space(), rng);
    if (!ctx.feasible(a)) {
      ++misses;
      continue;
    }
    int64_t before = ctx.evaluations();
    ctx.propose(a, "random");
    misses = ctx.evaluations() == before ? misses + 1 : 0;  // a cache hit counts as a miss
  }
}

void coarse_to_fine(SearchContext& ctx, Rng& rng) {
  const auto& o = ctx.options();
  // Coarse: every combination of global levels; 3 levels per dimension when the budget allows,
  // else 2, else a seeded subset of the 2-level grid. Half the budget at most.
  int64_t coarse_budget = std::max<int64_t>(1, o.budget / 2);
  std::vector<double> levels = coarse_budget >= 243 ? std::vector<double>{0, 0.5, 1} : std::vector<double>{0, 1};
  std::vector<supernet::Levels> grid;
  for (double r : levels)
    for (double d : levels)
      for (double w : levels)
        for (double e : levels)
          for (double k : levels) grid.push_back({r, d, w, e, k});
  std::vector<spec::Arch> coarse;
  for (const auto& l : grid) coarse.push_back(supernet::arch_at_levels(ctx.space(), l));
  std::vector<spec::Arch> feasible;
  std::set<std::string> seen;
  for (const auto& a : coarse) {
    if (!seen.insert(spec::arch_hash(a)).second) continue;  // levels coincide on small choice sets
    if (ctx.feasible(a))
      feasible.push_back(a);
    else
      ctx.propose(a, "coarse");  // recorded as infeasible, costs no evaluation
  }
  if (static_cast<int64_t>(feasible.size()) > coarse_budget) {
    rng.shuffle(feasible);
    feasible.resize(static_cast<size_t>(coarse_budget));
  }
  for (const auto& a : feasible) ctx.propose(a, "coarse");
  // Fine: mutate the current best few until the budget is spent.
  int stall = 0;
  size_t turn = 0;
  while (ctx.budget_left() && stall < 500) {
    auto parents = ctx.top(o.top_k);
    if (parents.empty()) {
      // No feasible coarse point: start from random feasible children.
      spec::Arch a = supernet::random_arch(ctx.space(), rng);
      if (ctx.feasible(a)) ctx.propose(a, "random");
      ++stall;
      continue;
    }
    const spec::Arch& p = ctx.result().candidates[parents[turn++ % parents.size()]].arch;
    spec::Arch child = supernet::mutate_arch(p, ctx.space(), rng, o.mutation_prob);
    int64_t before = ctx.evaluations();
    if (ctx.feasible(child)) ctx.propose(child, "mutation");
    stall = ctx.evaluations() == before ? stall + 1 : 0;
  }
}

void check_satisfiable(const spec::SearchSpace& space, const CostFn& cost, const spec::Constraints& c) {
  auto smallest = cost(supernet::min_arch(space));
  NAS_CHECK(c.admits(smallest.mflops(), smallest.params), SpecError,
            "constraints: no child satisfies max_mflops=" << c.max_mflops << " max_params=" << c.max_params
                                                          << " (the smallest child has " << smallest.mflops()
                                                          << " MFLOPs and " << smallest.params << " params)");
}

spec::SearchResult run_search(const spec::SearchSpace& space, const CostFn& cost, Estimator& est,
                              const SearchOptions& o) {
  double t0 = now_seconds();
  NAS_CHECK(std::find(strategy_names().begin(), strategy_names().end(), o.strategy) != strategy_names().end(),
            UsageError, "--strategy: expected coarse-to-fine or random, found " << o.strategy);
  check_satisfiable(space, cost, o.constraints);
  SearchContext ctx(space, cost, est, o);
  Rng rng(o.seed ^ 0x5ea4c4ULL);
  bool interrupted = false;
  try {
    if (o.strategy == "random")
      random_search(ctx, rng);
    else
      coarse_to_fine(ctx, rng);
  } catch (const Interrupted&) {
    interrupted = true;  // finish the result with what was evaluated; the caller saves it
  }
  ctx.finish_progress();
  spec::SearchResult r = std::move(ctx.result());
  r.space = space.name;
  r.strategy = o.strategy;
  r.seed = o.seed;
  r.budget = o.budget;
  r.constraints = o.constraints;
  r.interrupted = interrupted;
  auto best = [&] {
    int b = -1;
    for (const auto& c : r.candidates) {
      if (!c.feasible || !c.evaluated) continue;
      if (b < 0 || c.val_acc > r.candidates[b].val_acc ||
          (c.val_acc == r.candidates[b].val_acc && c.mflops < r.candidates[b].mflops))
        b = c.index;
    }
    return b;
  };
  r.best = best();
  r.pareto = spec::pareto_front(r.candidates);
  r.eval_seconds = ctx.eval_seconds();
  r.total_seconds = now_seconds() - t0;
  r.created = utc_now_iso();
  r.commit = build_commit();
  return r;
}

}  // namespace nas::search
