#include "search/search.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/dist.h"
#include "families/sampling.h"
#include "search/predictor.h"

namespace nas::search {

Score Estimator::score_generic(const spec::json&) {
  throw UsageError("the " + name() +
                   " estimator builds the network: it scores children of a family's space only; score a generic "
                   "space with --evaluator (or --predictor-from)");
}

Score Estimator::score_at(const spec::Arch&, int) {
  throw UsageError("--strategy hyperband: the " + name() + " estimator has no fidelity to vary; use --estimator "
                   "low-fidelity");
}

std::string replay_key(const spec::Candidate& c) {
  return c.fidelity > 0 ? c.hash + "@" + std::to_string(c.fidelity) : c.hash;
}

SearchContext::SearchContext(const Encoding& enc, CostFn cost, Estimator& est, const SearchOptions& o)
    : enc_(enc), arch_encoding_(dynamic_cast<const ArchEncoding*>(&enc)), cost_(std::move(cost)), est_(est), o_(o),
      start_(now_seconds()), progress_("search", o.budget, "eval") {
  if (o.objectives.empty()) return;
  check_objectives(o.objectives);
  hv_reference_ = reference_point();
  hv_ = std::make_unique<HypervolumeTracker>(minimized(o.objectives, hv_reference_));
}

namespace {
double bound_of(const spec::Constraints& b, const std::string& objective) {
  if (objective == "mflops") return b.max_mflops;
  if (objective == "params") return static_cast<double>(b.max_params);
  if (objective == "latency_ms") return b.max_latency_ms;
  if (objective == "memory_mib") return b.max_memory_mib;
  return 0;
}
}  // namespace

std::vector<double> SearchContext::reference_point() const {
  const auto& names = o_.objectives;
  if (!o_.hv_reference.empty()) {
    NAS_CHECK(o_.hv_reference.size() == names.size(), UsageError,
              "--hv-reference: expected one value per objective (" << names.size() << "), found "
                                                                    << o_.hv_reference.size());
    return o_.hv_reference;
  }
  std::vector<double> ref;
  std::optional<spec::Candidate> largest;  // mbconv: the costliest child, described once
  for (const auto& n : names) {
    const double bound = bound_of(o_.constraints, n);
    if (n == "accuracy") {
      ref.push_back(0.0);
    } else if (bound > 0) {
      ref.push_back(bound);
    } else {
      NAS_CHECK(arch_encoding_, UsageError,
                "--objectives " << n << ": a generic space has no largest child to place the hypervolume's "
                                << "reference at; give --hv-reference or a bound on " << n);
      if (!largest) largest = describe(arch_encoding_->encode(families::max_arch(arch_encoding_->space())), "largest");
      double v = objective_value(*largest, n);
      if (n == "latency_ms" && v < 0 && o_.latency_ms) v = o_.latency_ms(largest->arch);
      NAS_CHECK(v > 0, UsageError, "--objectives " << n << ": the largest child has no " << n
                                                   << " to place the hypervolume's reference at; give --hv-reference");
      ref.push_back(v);
    }
  }
  return ref;
}

Point SearchContext::told_point(const spec::Candidate& c, double acc) const {
  // A generic child has only the costs its evaluation reported: a screened one has none.
  if (o_.objectives.empty() || (!arch_encoding_ && !c.evaluated)) return {};
  spec::Candidate k = c;
  k.val_acc = acc;
  return objective_point(k, o_.objectives);
}

bool SearchContext::budget_left() const {
  if (evaluations_ >= o_.budget) return false;
  // Time spent in an earlier, stopped run counts too (its total_seconds, SearchOptions::resumed_seconds).
  return o_.time_budget <= 0 || now_seconds() - start_ + o_.resumed_seconds < o_.time_budget;
}

SearchContext::Costs SearchContext::costs(const spec::Arch& a) const {
  auto c = cost_(a);
  Costs k;
  k.mflops = c.mflops();
  k.params = c.params;
  k.memory_mib = c.memory_mib();
  const auto& b = o_.constraints;
  // Latency is measured only for children that pass the analytic bounds (it takes time).
  const bool latency_objective =
      std::find(o_.objectives.begin(), o_.objectives.end(), "latency_ms") != o_.objectives.end();
  if ((b.max_latency_ms > 0 || latency_objective || (o_.latency_always && o_.latency_ms)) &&
      b.admits(k.mflops, k.params, k.memory_mib)) {
    NAS_CHECK(o_.latency_ms != nullptr, UsageError, "a latency bound needs a way to measure latency");
    std::string h = spec::arch_hash(a);
    auto it = latency_cache_.find(h);
    if (it == latency_cache_.end()) it = latency_cache_.emplace(h, o_.latency_ms(a)).first;
    k.latency_ms = it->second;
  }
  k.feasible = b.admits(k.mflops, k.params, k.memory_mib, k.latency_ms < 0 ? 0.0 : k.latency_ms) &&
               (b.max_latency_ms <= 0 || k.latency_ms >= 0);
  return k;
}

bool SearchContext::admits_reported(const Score& s, std::string& why) const {
  const auto& b = o_.constraints;
  for (auto [bound, value, what] : {std::tuple<double, double, const char*>{b.max_mflops, s.mflops, "mflops"},
                                    {static_cast<double>(b.max_params), static_cast<double>(s.params), "params"},
                                    {b.max_memory_mib, s.memory_mib, "memory_mib"},
                                    {b.max_latency_ms, s.latency_ms, "latency_ms"}}) {
    if (bound > 0 && value < 0) {
      why = std::string("a bound on ") + what + " is set, but the estimator reported no \"" + what + "\"";
      return false;
    }
    if (value < 0 && std::find(o_.objectives.begin(), o_.objectives.end(), what) != o_.objectives.end()) {
      why = std::string(what) + " is an objective, but the estimator reported no \"" + what + "\"";
      return false;
    }
  }
  return b.admits(std::max(0.0, s.mflops), std::max<int64_t>(0, s.params), std::max(0.0, s.memory_mib),
                  std::max(0.0, s.latency_ms));
}

spec::Candidate SearchContext::describe(const Genotype& g, const std::string& key) const {
  spec::Candidate c;
  c.hash = key;
  if (arch_encoding_) {
    c.arch = arch_encoding_->decode(g);
    auto k = costs(c.arch);
    c.mflops = k.mflops;
    c.params = k.params;
    c.memory_mib = k.memory_mib;
    c.latency_ms = k.latency_ms;
    c.feasible = k.feasible;
  } else {
    c.generic_arch = enc_.to_json(g);  // no analytic costs: constraints apply after the evaluation
  }
  return c;
}

const spec::Candidate* SearchContext::screen(const Genotype& g, const std::string& origin, double predicted,
                                             const std::string& screened_by) {
  spec::Candidate c = describe(g, enc_.key(g));
  c.feasible = true;
  c.origin = origin;
  c.estimator = screened_by;
  c.screened = true;
  c.predicted_acc = predicted;
  c.index = static_cast<int>(r_.candidates.size());
  by_hash_[c.hash] = c.index;
  genotypes_.push_back(g);
  r_.candidates.push_back(c);
  return &r_.candidates.back();
}

SearchContext::Proposal SearchContext::prepare(const Genotype& g, const std::string& origin,
                                               const std::set<std::string>& batch_keys) const {
  Proposal p;
  p.g = g;
  p.origin = origin;
  p.key = enc_.key(g);
  if (by_hash_.count(p.key) || batch_keys.count(p.key)) {
    p.duplicate = true;
    return p;
  }
  p.c = describe(g, p.key);
  p.c.origin = origin;
  p.c.estimator = est_.name();
  p.evaluate = p.c.feasible;
  auto rep = o_.replay.find(p.key);
  p.replay = p.evaluate && rep != o_.replay.end() && rep->second.evaluated;
  return p;
}

namespace {
spec::json score_to_json(const Score& s, double seconds) {
  return {{"acc", s.acc},       {"loss", s.loss},     {"error", s.error},           {"detail", s.detail},
          {"mflops", s.mflops}, {"params", s.params}, {"memory_mib", s.memory_mib}, {"latency_ms", s.latency_ms},
          {"seconds", seconds}};
}
Score score_from_json(const spec::json& j, double& seconds) {
  // JSON has no NaN or infinity: nlohmann writes them as null (a diverged child's loss).
  auto num = [&](const char* k) {
    const auto& v = j.at(k);
    return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
  };
  Score s;
  s.acc = num("acc");
  s.loss = num("loss");
  s.error = j.at("error").get<std::string>();
  s.detail = j.at("detail").get<std::string>();
  s.mflops = num("mflops");
  s.params = j.at("params").get<int64_t>();
  s.memory_mib = num("memory_mib");
  s.latency_ms = num("latency_ms");
  seconds = num("seconds");
  return s;
}
}  // namespace

void SearchContext::score(std::vector<Proposal>& batch) {
  dist::Group* g = o_.group;
  const int ranks = g ? g->size() : 1, me = g ? g->rank() : 0;
  int turn = 0;
  spec::json mine = spec::json::object();  // batch index -> score, of the proposals this rank scored
  bool interrupted = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    Proposal& p = batch[i];
    if (!p.evaluate || p.replay || p.screened) continue;
    p.scored_by = turn++ % ranks;
    if (p.scored_by != me || interrupted) continue;
    try {
      double t0 = now_seconds();
      p.score = arch_encoding_ ? est_.score(p.c.arch) : est_.score_generic(p.c.generic_arch);
      p.seconds = now_seconds() - t0;
    } catch (const Interrupted&) {
      if (!g) throw;
      interrupted = true;  // told to the other ranks below, so that all stop together
      continue;
    }
    mine[std::to_string(i)] = score_to_json(p.score, p.seconds);
  }
  if (!g) return;
  // Every rank must have asked for the same children: their keys travel with the scores.
  std::string keys;
  for (const auto& p : batch) keys += p.key + (p.screened ? "s" : "") + ",";
  auto all = g->allgather(spec::compact_dump(spec::json{{"interrupted", interrupted}, {"keys", keys}, {"scores", mine}}),
                          "gathering the candidates' scores");
  for (size_t r = 0; r < all.size(); ++r) {
    auto j = spec::json::parse(all[r]);
    NAS_CHECK(j.at("keys").get<std::string>() == keys, Error,
              "rank " << r << " proposed other children than rank " << g->rank()
                      << ": the ranks' searches diverged (same command, files and build on every rank?)");
    if (j.at("interrupted").get<bool>()) interrupted = true;
    if (static_cast<int>(r) == me) continue;
    for (const auto& [k, v] : j.at("scores").items()) {
      Proposal& p = batch.at(static_cast<size_t>(std::stoll(k)));
      p.score = score_from_json(v, p.seconds);
    }
  }
  if (interrupted) throw Interrupted("search interrupted after " + std::to_string(evaluations_) + " evaluations");
}

const spec::Candidate* SearchContext::record(Proposal& p) {
  if (p.duplicate) {
    ++r_.cache_hits;
    return &r_.candidates[by_hash_.at(p.key)];
  }
  if (p.screened) return screen(p.g, p.origin, p.predicted, p.screened_by);
  spec::Candidate c = std::move(p.c);
  bool replayed = false;
  if (p.evaluate) {
    Score s;
    if (p.replay) {
      // Evaluated before the search was stopped: the same estimator would give the same score.
      const auto& prev = o_.replay.at(p.key);
      s.acc = prev.val_acc;
      s.loss = prev.val_loss;
      s.detail = prev.estimator_detail;
      c.eval_seconds = prev.eval_seconds;
      c.estimator = prev.estimator;
      if (arch_encoding_) {
        est_.replayed(c.arch, s);
      } else {
        c.mflops = prev.mflops;
        c.params = prev.params;
        c.memory_mib = prev.memory_mib;
        c.latency_ms = prev.latency_ms;
        c.feasible = prev.feasible;
      }
      replayed = true;
      ++replayed_;
    } else {
      s = p.score;
      c.eval_seconds = p.seconds;
      c.error = s.error;
      // Another rank scored it: an estimator with state learns the score as if it had.
      if (o_.group && p.scored_by != o_.group->rank() && arch_encoding_) est_.replayed(c.arch, s);
      if (!arch_encoding_ && s.error.empty()) {
        // The reported costs are the only ones a generic child has.
        c.mflops = std::max(0.0, s.mflops);
        c.params = std::max<int64_t>(0, s.params);
        c.memory_mib = std::max(0.0, s.memory_mib);
        c.latency_ms = s.latency_ms;
        c.feasible = admits_reported(s, c.error);
      }
    }
    c.val_acc = s.acc;
    c.val_loss = s.loss;
    c.estimator_detail = s.detail;
    eval_seconds_ += c.eval_seconds;
    c.evaluated = c.error.empty();
    ++evaluations_;
    char extra[128];
    std::snprintf(extra, sizeof extra, "%s acc %.4f %.2f MFLOPs%s", p.origin.c_str(), c.val_acc, c.mflops,
                  !c.evaluated ? " (failed)" : !c.feasible ? " (infeasible)" : "");
    progress_.update(evaluations_, extra);
    log_debug("candidate " + p.key + " " + (arch_encoding_ ? families::arch_summary(c.arch) : spec::compact_dump(c.generic_arch)) +
              ": " + extra);
  }
  c.index = static_cast<int>(r_.candidates.size());
  if (hv_) c.hypervolume = c.evaluated && c.feasible ? hv_->add(told_point(c, c.val_acc)) : hv_->value();
  by_hash_[p.key] = c.index;
  genotypes_.push_back(p.g);
  r_.candidates.push_back(c);
  if (c.evaluated && o_.on_evaluated && !replayed) o_.on_evaluated(c);  // a resumed run logged it already
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

namespace {
// r's best, fronts and multi-objective block, from its candidates at the top fidelity.
void summarize(spec::SearchResult& r, const std::vector<std::string>& objectives,
               const std::vector<double>& hv_reference, int top_fidelity) {
  // The candidates that count: feasible and evaluated, at the top fidelity when there are several.
  std::vector<spec::Candidate> counted = r.candidates;
  for (auto& c : counted)
    if (c.fidelity > 0 && c.fidelity < top_fidelity) c.evaluated = false;
  r.best = -1;
  for (const auto& c : counted) {
    if (!c.feasible || !c.evaluated) continue;
    if (r.best < 0 || c.val_acc > counted[r.best].val_acc ||
        (c.val_acc == counted[r.best].val_acc && c.mflops < counted[r.best].mflops))
      r.best = c.index;
  }
  r.pareto = spec::pareto_front(counted, "mflops");
  r.pareto_params = spec::pareto_front(counted, "params");
  r.pareto_memory = spec::pareto_front(counted, "memory_mib");
  r.pareto_latency = spec::pareto_front(counted, "latency_ms");
  if (objectives.empty()) return;
  r.multi.front = objectives_front(counted, objectives);
  std::vector<Point> front;
  for (int i : r.multi.front) front.push_back(objective_point(counted[static_cast<size_t>(i)], objectives));
  r.multi.hypervolume = hypervolume(front, minimized(objectives, hv_reference));
}
}  // namespace

spec::SearchIdentity identity_of(const Encoding& enc, const SearchOptions& o) {
  spec::SearchIdentity id;
  id.space = enc.space_name();
  id.family = enc.family();
  id.space_hash = enc.space_hash();
  id.strategy = o.strategy;
  id.seed = o.seed;
  id.budget = o.budget;
  id.time_budget = o.time_budget;
  id.strategy_options = strategy_options_json(o.strategy, o.strategy_options);
  if (o.prescreen) id.strategy_options["prescreen"] = true;
  if (o.prescreen && o.prescreen_proxy) id.strategy_options["prescreen_proxy"] = o.prescreen_proxy_name;
  id.constraints = o.constraints;
  id.objectives = o.objectives;
  id.hv_reference = o.hv_reference;
  return id;
}

void finish_result(spec::SearchResult& r, const Encoding& enc, const SearchOptions& o,
                   const std::vector<double>& hv_reference, bool interrupted, double seconds, int top_fidelity) {
  static_cast<spec::SearchIdentity&>(r) = identity_of(enc, o);
  if (r.multi_objective()) r.hv_reference = hv_reference;  // resolved when o left it empty
  r.interrupted = interrupted;
  summarize(r, o.objectives, hv_reference, top_fidelity);
  r.total_seconds = seconds + o.resumed_seconds;
  r.created = utc_now_iso();
  r.commit = build_commit();
}

namespace {
double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Pre-screening (SearchOptions::prescreen): after the warm-up, a new feasible child is screened
// out when the accuracy predictor (refitted every 10 evaluations) predicts it below the median
// evaluated score, or when its zero-cost proxy is below the median proxy of the evaluated children.
class Prescreen {
 public:
  Prescreen(const Encoding& enc, const SearchOptions& o)
      : o_(o), warmup_(o.prescreen_warmup > 0 ? o.prescreen_warmup : std::max<int64_t>(10, o.budget / 5)) {
    if (!o.prescreen_proxy) predictor_ = std::make_unique<AccuracyPredictor>(enc, 5, o.seed);
  }

  // Whether new feasible child g (key `key`) is screened out; if so, `told` is the score the
  // strategy is told and `predicted` what the candidate records.
  bool screens(const Genotype& g, const std::string& key, const SearchContext& ctx, double& told, double& predicted) {
    if (predictor_) {
      if (!predictor_->fitted()) return false;
      predicted = told = predictor_->predict(g);
      return predicted < threshold_;
    }
    predicted = o_.prescreen_proxy(g);
    if (ctx.evaluations() < warmup_ || evaluated_proxies_.empty() || predicted >= median_of(evaluated_proxies_)) {
      pending_[key] = predicted;
      return false;
    }
    told = lowest_score(ctx);
    return true;
  }

  // After a new evaluation: the proxy of the evaluated child joins the median's sample; the
  // predictor is refitted every 10 evaluations after the warm-up.
  void learn(const SearchContext& ctx) {
    const auto& cands = ctx.result().candidates;
    for (; seen_ < cands.size(); ++seen_) {
      auto it = pending_.find(cands[seen_].hash);
      if (it == pending_.end()) continue;
      if (cands[seen_].evaluated) evaluated_proxies_.push_back(it->second);
      pending_.erase(it);
    }
    if (predictor_) refit(ctx);
  }

  std::string screened_by() const { return predictor_ ? "predictor" : o_.prescreen_proxy_name; }

  // The predictor's settings and last validation, or the proxy's, for nas.search.
  spec::json report(const std::vector<spec::Candidate>& cands) const {
    const auto screened = std::count_if(cands.begin(), cands.end(), [](const spec::Candidate& c) { return c.screened; });
    if (!predictor_)
      return {{"mode", "prescreen"}, {"proxy", o_.prescreen_proxy_name}, {"warmup", warmup_}, {"screened", screened}};
    if (!predictor_->fitted()) return nullptr;
    const auto& rep = predictor_->report();
    return {{"mode", "prescreen"},
            {"members", 5},
            {"warmup", warmup_},
            {"points", rep.points},
            {"val_points", rep.val_points},
            {"val_rmse", rep.val_rmse},
            {"val_kendall_tau", rep.val_kendall_tau},
            {"screened", screened}};
  }

 private:
  static double lowest_score(const SearchContext& ctx) {
    double low = 0;
    bool any = false;
    for (const auto& c : ctx.result().candidates)
      if (c.evaluated && c.feasible) {
        low = any ? std::min(low, c.val_acc) : c.val_acc;
        any = true;
      }
    return low;
  }

  void refit(const SearchContext& ctx) {
    const int64_t n = ctx.evaluations();
    if (n < warmup_ || (predictor_->fitted() && n - fitted_at_ < 10)) return;
    std::vector<Genotype> xs;
    std::vector<double> ys;
    for (const auto& c : ctx.result().candidates)
      if (c.evaluated && c.feasible) {
        xs.push_back(ctx.genotype(c.index));
        ys.push_back(c.val_acc);
      }
    if (xs.size() < 3) return;
    auto rep = predictor_->fit(xs, ys);
    fitted_at_ = n;
    threshold_ = median_of(ys);
    log_info("predictor: fitted on " + std::to_string(rep.points) + " candidates; held-out RMSE " +
             std::to_string(rep.val_rmse) + ", Kendall tau " + std::to_string(rep.val_kendall_tau));
  }

  const SearchOptions& o_;
  const int64_t warmup_;
  std::unique_ptr<AccuracyPredictor> predictor_;  // null: the proxy screens
  double threshold_ = 0;
  int64_t fitted_at_ = 0;
  std::map<std::string, double> pending_;  // proxies of children not recorded yet, by key
  std::vector<double> evaluated_proxies_;
  size_t seen_ = 0;  // candidates learnt from
};
}  // namespace

std::unique_ptr<Strategy> make_any_strategy(const std::string& name, const Encoding& enc, const StrategyOptions& o,
                                            uint64_t seed) {
  if (name == "bayesian") return make_bayesian(enc, o, seed);
  if (name == "ehvi") return make_ehvi(enc, o);
  return make_strategy(name, enc, o);
}

void check_satisfiable(const spec::SearchSpace& space, const CostFn& cost, const spec::Constraints& c,
                       const std::function<double(const spec::Arch&)>& latency_ms) {
  spec::Arch min = families::cheapest_arch(space);
  auto smallest = cost(min);
  double lat = c.max_latency_ms > 0 && latency_ms ? latency_ms(min) : 0.0;
  NAS_CHECK(c.admits(smallest.mflops(), smallest.params, smallest.memory_mib(), lat), SpecError,
            "constraints: no child satisfies max_mflops=" << c.max_mflops << " max_params=" << c.max_params
                << " max_memory_mib=" << c.max_memory_mib << " max_latency_ms=" << c.max_latency_ms
                << " (the smallest child has " << smallest.mflops() << " MFLOPs, " << smallest.params << " params, "
                << smallest.memory_mib() << " MiB" << (c.max_latency_ms > 0 ? ", " + std::to_string(lat) + " ms" : "")
                << ")");
}

spec::SearchResult run_search(const spec::SearchSpace& space, const CostFn& cost, Estimator& est,
                              const SearchOptions& o) {
  ArchEncoding enc(space);
  return run_search(enc, cost, est, o);
}

spec::SearchResult run_search(const Encoding& enc, const CostFn& cost, Estimator& est, const SearchOptions& o) {
  double t0 = now_seconds();
  if (const auto* mb = dynamic_cast<const ArchEncoding*>(&enc))
    check_satisfiable(mb->space(), cost, o.constraints, o.latency_ms);
  SearchContext ctx(enc, cost, est, o);
  StrategyOptions so = o.strategy_options;
  so.budget = o.budget;
  if (!o.objectives.empty()) so.hv_reference = minimized(o.objectives, ctx.hv_reference());
  auto strategy = o.make_strategy ? o.make_strategy() : make_any_strategy(o.strategy, enc, so, o.seed);
  std::unique_ptr<Prescreen> prescreen;
  if (o.prescreen) prescreen = std::make_unique<Prescreen>(enc, o);
  // The header, best, front and timings of a result (the final one, or a checkpoint).
  auto fill = [&](spec::SearchResult& r, bool interrupted) {
    finish_result(r, enc, o, ctx.hv_reference(), interrupted, now_seconds() - t0);
    r.eval_seconds = ctx.eval_seconds();
    if (prescreen) r.predictor = prescreen->report(r.candidates);
  };
  Rng rng(o.seed ^ 0x5ea4c4ULL);
  bool interrupted = false;
  // Children are asked in batches: more than one only while the strategy's next child does not
  // depend on the pending scores (Strategy::ask_ahead) and the estimator's scores do not depend on
  // their order; at most one evaluation per rank. The batch is scored (in parallel over the ranks),
  // then recorded and told in ask order: the same search as asking, scoring and telling one child
  // at a time.
  const bool ahead = !o.prescreen && est.order_free();
  const int64_t per_batch = o.group ? o.group->size() : 1;
  try {
    int64_t idle = 0;
    bool exhausted = false;
    while (!exhausted && idle < o.max_idle) {
      // Interrupted or out of budget (the time differs between ranks): decided by all together.
      bool stop = !ctx.budget_left(), intr = interrupt_requested();
      if (o.group) {
        intr = o.group->any(intr, "the search's interrupt check");
        stop = o.group->any(stop, "the search's budget check");
      }
      if (stop) break;
      if (intr) throw Interrupted("search interrupted after " + std::to_string(ctx.evaluations()) + " evaluations");
      std::vector<SearchContext::Proposal> batch;
      std::set<std::string> keys;
      int64_t told_feasible = 0, evals = 0, sim_idle = idle;
      while (batch.empty() || (ahead && strategy->ask_ahead(told_feasible))) {
        if (evals >= per_batch || ctx.evaluations() + evals >= o.budget || sim_idle >= o.max_idle) break;
        auto g = strategy->ask(rng);
        if (!g) {  // the strategy has nothing left to propose
          exhausted = true;
          break;
        }
        auto p = ctx.prepare(*g, strategy->origin(), keys);
        if (p.evaluate && prescreen && prescreen->screens(*g, p.key, ctx, p.told, p.predicted)) {
          p.screened = true;
          p.evaluate = false;
          p.screened_by = prescreen->screened_by();
        }
        bool feasible = p.evaluate || p.screened;  // assumed for the pending ones (see ask_ahead)
        if (p.duplicate && !keys.count(p.key)) {
          const auto& c = ctx.result().candidates[static_cast<size_t>(ctx.index_of(p.key))];
          feasible = c.evaluated && c.feasible;
        } else if (p.duplicate) {
          feasible = true;
        }
        told_feasible += feasible;
        evals += p.evaluate;
        sim_idle = p.evaluate ? 0 : sim_idle + 1;
        keys.insert(p.key);
        batch.push_back(std::move(p));
      }
      if (batch.empty()) break;
      ctx.score(batch);
      for (auto& p : batch) {
        int64_t before = ctx.evaluations();
        const spec::Candidate* c = ctx.record(p);
        if (p.screened && !o.objectives.empty() && ctx.told_point(*c, p.told).empty())
          strategy->tell(p.g, false, p.told, {});  // no costs to place it among the objectives
        else if (p.screened)
          strategy->tell(p.g, true, p.told, ctx.told_point(*c, p.told));
        else if (c->evaluated && c->feasible)
          strategy->tell(p.g, true, c->val_acc, ctx.told_point(*c, c->val_acc));
        else
          strategy->tell(p.g, false, c->val_acc, {});
        if (prescreen && ctx.evaluations() != before) prescreen->learn(ctx);  // an error counts as unusable
        idle = ctx.evaluations() == before ? idle + 1 : 0;
        if (o.on_checkpoint && o.checkpoint_every > 0 && ctx.evaluations() != before &&
            ctx.evaluations() % o.checkpoint_every == 0 && ctx.evaluations() > ctx.replayed()) {
          spec::SearchResult snap = ctx.result();
          fill(snap, /*interrupted=*/true);
          o.on_checkpoint(snap);
        }
      }
    }
  } catch (const Interrupted&) {
    interrupted = true;  // finish the result with what was evaluated; the caller saves it
  }
  ctx.finish_progress();
  spec::SearchResult r = std::move(ctx.result());
  fill(r, interrupted);
  return r;
}

}  // namespace nas::search
