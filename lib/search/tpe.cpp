// The tree-structured Parzen estimator (Bergstra et al., 2011), in the manner of Optuna's
// TPESampler: after a startup of random children, the observations are split into a good group
// (the best ceil(gamma * n), at most 25) and the rest; each group becomes a Parzen density over
// genotypes, and the next child is the one of `tpe_candidates` samples from the good density that
// maximizes good / rest.
//
// Kernels, one per observation and decision:
//  - unordered decisions: a categorical kernel, 1 + eps on the observed option and eps on every
//    option (eps = prior weight / kernels), normalized;
//  - ordered decisions: a Gaussian on the option index, discretized to the options and truncated to
//    the list; bandwidth max(0.2 n^(-1/(d+4)), 1 / min(100, n + 2)) times the number of options
//    (Scott's rule as Optuna's multivariate TPE uses it, clipped below as its "magic clip"; the
//    independent mode uses it with d = 1, where Optuna takes the distance to the neighbours);
//  - a decision inactive in the observed child (a block beyond its stage's depth): uniform.
// Each group also holds a prior kernel (uniform, or a Gaussian as wide as the list) of weight 1.
// Older observations weigh less once there are more than 25 (Optuna's default weights).
//
// Multivariate (the default): one kernel is a product over the decisions of one observation's
// kernels, so the density models the decisions jointly; a candidate is drawn by picking a kernel,
// then each decision from it. Independent: each decision has its own mixture and is chosen on its
// own, from its own candidates. Only the decisions active in a candidate enter its densities.
//
// Infeasible children (outside the bounds) are observations of the bad group: the density steers
// away from them. A child already asked for is not proposed again.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "search/strategy.h"

namespace nas::search {
namespace {

constexpr double kPriorWeight = 1.0;
constexpr int64_t kMaxGood = 25;         // Optuna's gamma: min(ceil(0.1 n), 25)
constexpr int64_t kFlatWeights = 25;     // the newest 25 observations weigh 1, older ones ramp down
constexpr int kRedraws = 8;              // independent mode: fresh draws before a mutation stands in

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

double log_sum_exp(const std::vector<double>& v) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : v) m = std::max(m, x);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

// Optuna's default weights for n observations in time order: 1 for the newest 25, a ramp from 1/n
// to 1 for the older ones.
std::vector<double> age_weights(size_t n) {
  std::vector<double> w(n, 1.0);
  if (n <= static_cast<size_t>(kFlatWeights)) return w;
  const size_t ramp = n - static_cast<size_t>(kFlatWeights);
  for (size_t i = 0; i < ramp; ++i)
    w[i] = ramp == 1 ? 1.0 / static_cast<double>(n)
                     : 1.0 / static_cast<double>(n) +
                           (1.0 - 1.0 / static_cast<double>(n)) * static_cast<double>(i) / static_cast<double>(ramp - 1);
  return w;
}

// A Parzen density over genotypes: kernels (one per observation, plus the prior), each with a
// log-probability per decision and option.
class Parzen {
 public:
  Parzen(const Encoding& enc, const std::vector<const Genotype*>& obs, bool multivariate) : enc_(enc) {
    const auto& ds = enc.decisions();
    size_t width = 0;
    for (const auto& d : ds) {
      offsets_.push_back(width);
      width += static_cast<size_t>(d.size());
    }
    const double n = static_cast<double>(obs.size());
    const double dims = multivariate ? static_cast<double>(ds.size()) : 1.0;
    const double scale = std::max(0.2 * std::pow(std::max(n, 1.0), -1.0 / (dims + 4.0)), 1.0 / std::min(100.0, n + 2.0));
    const double eps = kPriorWeight / (n + 1.0);
    auto w = age_weights(obs.size());
    w.push_back(kPriorWeight);
    double total = 0;
    for (double x : w) total += x;
    for (size_t k = 0; k <= obs.size(); ++k) {
      const bool prior = k == obs.size();
      std::vector<double> logp(width);
      for (size_t j = 0; j < ds.size(); ++j) {
        const int K = ds[j].size();
        const bool informative = !prior && enc.active(*obs[k], j);
        const int at = informative ? (*obs[k])[j] : -1;
        std::vector<double> p(static_cast<size_t>(K));
        for (int v = 0; v < K; ++v) {
          if (!informative && (!prior || !ds[j].ordered))
            p[static_cast<size_t>(v)] = 1.0;
          else if (!ds[j].ordered)
            p[static_cast<size_t>(v)] = eps + (v == at ? 1.0 : 0.0);
          else
            p[static_cast<size_t>(v)] = gaussian_mass(v, prior ? 0.5 * (K - 1) : at, prior ? K : scale * K);
        }
        double s = 0;
        for (double x : p) s += x;
        for (int v = 0; v < K; ++v) logp[offsets_[j] + static_cast<size_t>(v)] = std::log(p[static_cast<size_t>(v)] / s);
      }
      log_w_.push_back(std::log(w[k] / total));
      logp_.push_back(std::move(logp));
    }
  }

  // log density of g over its active decisions, the kernels taken jointly.
  double log_joint(const Genotype& g) const {
    std::vector<size_t> at;  // the row index of each active decision's option
    for (size_t j = 0; j < g.size(); ++j)
      if (enc_.active(g, j)) at.push_back(offsets_[j] + static_cast<size_t>(g[j]));
    std::vector<double> terms(logp_.size());
    for (size_t k = 0; k < logp_.size(); ++k) {
      double t = log_w_[k];
      for (size_t i : at) t += logp_[k][i];
      terms[k] = t;
    }
    return log_sum_exp(terms);
  }
  // log density of option v of decision j alone (the mixture of the kernels' marginals).
  double log_marginal(size_t j, int v) const {
    std::vector<double> terms(logp_.size());
    for (size_t k = 0; k < logp_.size(); ++k) terms[k] = log_w_[k] + logp_[k][offsets_[j] + static_cast<size_t>(v)];
    return log_sum_exp(terms);
  }
  // A genotype drawn from one kernel (picked by weight), then canonical.
  Genotype sample_joint(Rng& rng) const {
    const size_t k = pick_kernel(rng);
    Genotype g(enc_.size());
    for (size_t j = 0; j < g.size(); ++j) g[j] = draw(logp_[k], j, rng);
    return enc_.canonical(g);
  }
  // An option of decision j drawn from the mixture of the kernels' marginals.
  int sample_marginal(size_t j, Rng& rng) const { return draw(logp_[pick_kernel(rng)], j, rng); }

 private:
  static double gaussian_mass(int v, double mu, double sigma) {
    return std::max(normal_cdf((v + 0.5 - mu) / sigma) - normal_cdf((v - 0.5 - mu) / sigma), 1e-300);
  }
  size_t pick_kernel(Rng& rng) const {
    double u = rng.uniform(), acc = 0;
    for (size_t k = 0; k < log_w_.size(); ++k) {
      acc += std::exp(log_w_[k]);
      if (u < acc) return k;
    }
    return log_w_.size() - 1;
  }
  int draw(const std::vector<double>& logp, size_t j, Rng& rng) const {
    const int K = enc_.decisions()[j].size();
    double u = rng.uniform(), acc = 0;
    for (int v = 0; v < K; ++v) {
      acc += std::exp(logp[offsets_[j] + static_cast<size_t>(v)]);
      if (u < acc) return v;
    }
    return K - 1;
  }

  const Encoding& enc_;
  std::vector<size_t> offsets_;             // of each decision's options in a kernel's row
  std::vector<double> log_w_;               // of each kernel
  std::vector<std::vector<double>> logp_;   // [kernel][offset + option]
};

class Tpe : public Strategy {
 public:
  Tpe(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {}
  std::string name() const override { return "tpe"; }

  std::optional<Genotype> ask(Rng& rng) override {
    Genotype g = propose(rng);
    asked_.insert(g);
    return g;
  }

  void tell(const Genotype& g, bool feasible, double score) override {
    if (!told_.insert(g).second) return;  // a repeat adds nothing
    obs_.push_back({g, feasible, score});
    feasible_ += feasible;
  }

  bool ask_ahead(int64_t pending_feasible) const override { return feasible_ + pending_feasible < o_.tpe_startup; }

 private:
  struct Observation {
    Genotype g;
    bool feasible;
    double score;
  };

  // A child not asked before (unless nearly every child has been).
  Genotype propose(Rng& rng) {
    if (feasible_ < o_.tpe_startup) {
      origin_ = "random";
      return unasked_random(rng);
    }
    origin_ = "tpe";
    std::vector<const Genotype*> good, bad;
    split(good, bad);
    Parzen l(enc_, good, o_.tpe_multivariate), g(enc_, bad, o_.tpe_multivariate);
    std::optional<Genotype> best = o_.tpe_multivariate ? joint_choice(l, g, rng) : independent_choice(l, g, rng);
    if (best) return *best;
    origin_ = "random";  // every candidate asked already
    return unasked_random(rng);
  }

  // The good group: the best ceil(gamma n) feasible observations (at most 25, at least 1); the
  // rest, infeasible ones included, is the bad group. Both keep time order.
  void split(std::vector<const Genotype*>& good, std::vector<const Genotype*>& bad) const {
    const int64_t n = static_cast<int64_t>(obs_.size());
    int64_t n_good = std::min<int64_t>(kMaxGood, static_cast<int64_t>(std::ceil(o_.tpe_gamma * static_cast<double>(n))));
    n_good = std::max<int64_t>(1, std::min(n_good, feasible_));
    std::vector<size_t> order(obs_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (obs_[a].feasible != obs_[b].feasible) return obs_[a].feasible;
      return obs_[a].score > obs_[b].score;
    });
    std::vector<bool> is_good(obs_.size(), false);
    for (int64_t i = 0; i < n_good; ++i) is_good[order[static_cast<size_t>(i)]] = true;
    for (size_t i = 0; i < obs_.size(); ++i) (is_good[i] ? good : bad).push_back(&obs_[i].g);
  }

  // Multivariate: the unasked one of `tpe_candidates` joint samples of l with the largest l / g.
  std::optional<Genotype> joint_choice(const Parzen& l, const Parzen& g, Rng& rng) const {
    std::optional<Genotype> best;
    double best_ratio = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < o_.tpe_candidates; ++c) {
      Genotype x = l.sample_joint(rng);
      if (asked_.count(x)) continue;
      const double ratio = l.log_joint(x) - g.log_joint(x);
      if (!best || ratio > best_ratio) {
        best = x;
        best_ratio = ratio;
      }
    }
    return best;
  }

  // Independent: each decision on its own, the best of its `tpe_candidates` marginal samples;
  // a result asked before is drawn again, then mutated.
  std::optional<Genotype> independent_choice(const Parzen& l, const Parzen& g, Rng& rng) const {
    Genotype x(enc_.size());
    for (int t = 0; t < kRedraws; ++t) {
      for (size_t j = 0; j < x.size(); ++j) x[j] = best_option(l, g, j, rng);
      x = enc_.canonical(x);
      if (!asked_.count(x)) return x;
    }
    for (int t = 0; t < 100; ++t) {
      Genotype m = enc_.mutate(x, rng, o_.mutation_prob);
      if (!asked_.count(m)) return m;
    }
    return std::nullopt;
  }
  int best_option(const Parzen& l, const Parzen& g, size_t j, Rng& rng) const {
    int best = 0;
    double best_ratio = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < o_.tpe_candidates; ++c) {
      const int v = l.sample_marginal(j, rng);
      const double ratio = l.log_marginal(j, v) - g.log_marginal(j, v);
      if (ratio > best_ratio) {
        best = v;
        best_ratio = ratio;
      }
    }
    return best;
  }

  Genotype unasked_random(Rng& rng) const {
    for (int tries = 0; tries < 1000; ++tries) {
      Genotype g = enc_.random(rng);
      if (!asked_.count(g)) return g;
    }
    return enc_.random(rng);  // (nearly) everything asked: the driver's cache decides
  }

  const Encoding& enc_;
  StrategyOptions o_;
  std::vector<Observation> obs_;  // in tell order
  std::set<Genotype> told_;
  // Every child asked for: a batch of asks (ask_ahead) must not repeat a child whose tell is
  // pending, so that it proposes what one-at-a-time asks and tells would.
  std::set<Genotype> asked_;
  int64_t feasible_ = 0;
};

}  // namespace

std::unique_ptr<Strategy> make_tpe(const Encoding& enc, const StrategyOptions& o) { return std::make_unique<Tpe>(enc, o); }

}  // namespace nas::search
