#include "search/hyperband.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace nas::search {

std::vector<std::vector<Rung>> hyperband_brackets(int min_epochs, int max_epochs, int eta) {
  NAS_CHECK(min_epochs >= 1 && max_epochs >= min_epochs && eta >= 2, UsageError,
            "hyperband: expected 1 <= --hb-min-epochs <= --hb-max-epochs and --hb-eta >= 2, found "
                << min_epochs << ", " << max_epochs << ", " << eta);
  int s_max = 0;
  while (std::pow(eta, s_max + 1) * min_epochs <= max_epochs) ++s_max;
  std::vector<std::vector<Rung>> brackets;
  for (int s = s_max; s >= 0; --s) {
    const int n = static_cast<int>(std::ceil((s_max + 1.0) / (s + 1.0) * std::pow(eta, s)));
    std::vector<Rung> rungs;
    for (int i = 0; i <= s; ++i) {
      Rung r;
      r.children = std::max(1, static_cast<int>(std::floor(n * std::pow(eta, -i))));
      r.epochs = std::max(min_epochs, static_cast<int>(std::lround(max_epochs * std::pow(eta, i - s))));
      rungs.push_back(r);
    }
    brackets.push_back(rungs);
  }
  return brackets;
}

namespace {

// One Hyperband search: its candidates so far and how it spends the budget.
class Hyperband {
 public:
  Hyperband(const ArchEncoding& enc, const CostFn& cost, Estimator& est, const SearchOptions& o)
      : enc_(enc), est_(est), o_(o), ctx_(enc, cost, est, o), progress_("search", o.budget, "eval"),
        start_(now_seconds()) {
    if (!o.objectives.empty())
      hv_ = std::make_unique<HypervolumeTracker>(minimized(o.objectives, ctx_.hv_reference()));
  }

  spec::SearchResult run() {
    Rng rng(o_.seed ^ 0x4b7e4bULL);
    bool interrupted = false;
    try {
      const auto brackets = hyperband_brackets(so().hb_min_epochs, so().hb_max_epochs, so().hb_eta);
      for (int iteration = 0; budget_left(); ++iteration) {
        const int64_t before = evaluations_;
        for (size_t b = 0; b < brackets.size() && budget_left(); ++b) run_bracket(brackets[b], iteration, b, rng);
        if (evaluations_ == before) break;  // no child within the bounds, or every one trained already
      }
    } catch (const Interrupted&) {
      interrupted = true;  // the caller saves what was evaluated
    }
    progress_.finish(evaluations_);
    return result(interrupted);
  }

 private:
  const StrategyOptions& so() const { return o_.strategy_options; }

  bool budget_left() const {
    if (evaluations_ >= o_.budget) return false;
    return o_.time_budget <= 0 || now_seconds() - start_ + o_.resumed_seconds < o_.time_budget;
  }

  // Successive halving: each rung's children trained for its epochs, the best go on.
  void run_bracket(const std::vector<Rung>& rungs, int iteration, size_t bracket, Rng& rng) {
    std::vector<Genotype> children = draw(rungs[0].children, rng);
    for (size_t i = 0; i < rungs.size() && !children.empty(); ++i) {
      std::vector<std::pair<double, size_t>> scored;
      const std::string origin = "hyperband" + std::to_string(iteration) + ".bracket" + std::to_string(bracket) +
                                 ".rung" + std::to_string(i);
      for (size_t k = 0; k < children.size(); ++k) {
        if (!budget_left()) return;
        if (interrupt_requested()) throw Interrupted("search interrupted after " + std::to_string(evaluations_) +
                                                     " evaluations");
        scored.emplace_back(evaluate(children[k], rungs[i].epochs, origin), k);
      }
      if (i + 1 == rungs.size()) break;
      std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      std::vector<Genotype> next;
      for (size_t k = 0; k < scored.size() && next.size() < static_cast<size_t>(rungs[i + 1].children); ++k)
        if (std::isfinite(scored[k].first)) next.push_back(children[scored[k].second]);
      children = std::move(next);
    }
  }

  // `n` distinct random children within the bounds (fewer when they are hard to find).
  std::vector<Genotype> draw(int n, Rng& rng) const {
    std::vector<Genotype> out;
    std::set<Genotype> seen;
    for (int tries = 0; static_cast<int>(out.size()) < n && tries < 1000 * n; ++tries) {
      Genotype g = enc_.random(rng);
      if (seen.count(g) || !ctx_.costs(enc_.decode(g)).feasible) continue;
      seen.insert(g);
      out.push_back(g);
    }
    return out;
  }

  // Trains child g for `epochs` (or replays a stopped run's score); returns its score, -inf when
  // its evaluation failed.
  double evaluate(const Genotype& g, int epochs, const std::string& origin) {
    spec::Candidate c;
    c.arch = enc_.decode(g);
    c.hash = enc_.key(g);
    c.fidelity = epochs;
    auto done = scored_.find(replay_key(c));
    if (done != scored_.end()) {  // trained for as long in an earlier bracket: no second training
      ++r_.cache_hits;
      return done->second;
    }
    const auto k = ctx_.costs(c.arch);
    c.mflops = k.mflops;
    c.params = k.params;
    c.memory_mib = k.memory_mib;
    c.latency_ms = k.latency_ms;
    c.origin = origin;
    c.estimator = est_.name();
    auto rep = o_.replay.find(replay_key(c));
    const bool replayed = rep != o_.replay.end() && rep->second.evaluated;
    if (replayed) {
      c.val_acc = rep->second.val_acc;
      c.val_loss = rep->second.val_loss;
      c.estimator_detail = rep->second.estimator_detail;
      c.eval_seconds = rep->second.eval_seconds;
      ++replayed_;
    } else {
      const double t0 = now_seconds();
      Score s = est_.score_at(c.arch, epochs);
      c.eval_seconds = now_seconds() - t0;
      c.val_acc = s.acc;
      c.val_loss = s.loss;
      c.estimator_detail = s.detail;
      c.error = s.error;
    }
    c.evaluated = c.error.empty();
    c.index = static_cast<int>(r_.candidates.size());
    if (hv_) c.hypervolume = c.evaluated && epochs == so().hb_max_epochs ? hv_->add(ctx_.told_point(c, c.val_acc))
                                                                       : hv_->value();
    eval_seconds_ += c.eval_seconds;
    r_.candidates.push_back(c);
    ++evaluations_;
    char extra[128];
    std::snprintf(extra, sizeof extra, "%s acc %.4f at %d epochs", origin.c_str(), c.val_acc, epochs);
    progress_.update(evaluations_, extra);
    if (c.evaluated && o_.on_evaluated && !replayed) o_.on_evaluated(c);
    if (o_.on_checkpoint && o_.checkpoint_every > 0 && evaluations_ % o_.checkpoint_every == 0 &&
        evaluations_ > replayed_)
      o_.on_checkpoint(result(/*interrupted=*/true));
    const double score = c.evaluated ? c.val_acc : -std::numeric_limits<double>::infinity();
    scored_[replay_key(c)] = score;
    return score;
  }

  spec::SearchResult result(bool interrupted) const {
    spec::SearchResult r = r_;
    finish_result(r, enc_, o_, ctx_.hv_reference(), interrupted, now_seconds() - start_, so().hb_max_epochs);
    r.eval_seconds = eval_seconds_;
    return r;
  }

  const ArchEncoding& enc_;
  Estimator& est_;
  const SearchOptions& o_;
  SearchContext ctx_;  // costs, feasibility and the hypervolume's reference
  Progress progress_;
  double start_;
  spec::SearchResult r_;
  std::unique_ptr<HypervolumeTracker> hv_;
  std::map<std::string, double> scored_;  // by replay_key: each child trained once per fidelity
  int64_t evaluations_ = 0, replayed_ = 0;
  double eval_seconds_ = 0;
};

}  // namespace

spec::SearchResult run_hyperband(const ArchEncoding& enc, const CostFn& cost, Estimator& est, const SearchOptions& o) {
  NAS_CHECK(!o.group, UsageError, "--strategy hyperband: runs in one process");
  check_satisfiable(enc.space(), cost, o.constraints, o.latency_ms);
  return Hyperband(enc, cost, est, o).run();
}

}  // namespace nas::search
