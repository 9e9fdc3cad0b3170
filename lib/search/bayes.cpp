// Bayesian optimization over genotypes: Gaussian processes computed with LibTorch tensors
// (float64). Two strategies share the model: bayesian (one objective, expected improvement) and
// ehvi (several objectives, expected hypervolume improvement on one GP per objective).
//
// A GP beside TPE (search/tpe.cpp): budgets in NAS with a supernet are tens to a few hundred
// evaluations, where a GP's posterior is cheap (a Cholesky factorization of at most a few hundred
// points) and its uncertainty is calibrated between evaluated points; TPE needs more observations
// to shape its two densities, but costs little per proposal and models categories natively. Most
// decisions are ordered option lists (widths, kernels, depths), so an ordinal embedding (option
// index / (options - 1)) puts neighbouring options close, as the weights they share make them in
// accuracy; unordered ones (activations) are one-hot.
//
// Model: zero-mean GP on standardized values, Matern-5/2 kernel on the embedding, lengthscale and
// noise chosen by the log marginal likelihood over a small grid. bayesian's acquisition: expected
// improvement, maximized over a pool of 200 random genotypes, 100 mutations of the best five and every
// one-step neighbour of the best; genotypes already told are never proposed again. The first
// observations come from random genotypes (StrategyOptions::bo_init, by default
// max(5, min(10, budget / 10)) of them: measured better than 20 at a budget of 150).
//
// ehvi (multi-objective, as nas-search --objectives names them): the space's extremes first (as
// NSGA-II's first population: the cheapest and the largest child, Encoding::extremes), then
// bo_init random children asked (bayesian's number; bayesian counts the feasible ones, ehvi every
// one asked), then the child of the pool (every neighbour of one front member in turn, 20
// mutations of each of at most 10 front members, 200 random genotypes) whose expected hypervolume
// improvement is largest: the mean over a fixed set of standard normal draws of the hypervolume
// each sampled point would add to the front, the objectives drawn from their independent GPs'
// posteriors. The reference point is the search's (StrategyOptions::hv_reference), so the
// acquisition values what the search's hypervolume counts. An infeasible child enters each GP at
// the worst value told of that objective (the 200 most recent): a bound that is not an objective
// (or a cost bound, where the GP's mean would step over it) then keeps the proposals out of its
// neighbourhood. When no draw adds hypervolume (a reference no child has reached yet), the child
// with the largest sum of each objective's expected gain over its best told value (in units of
// its spread) is proposed.
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <set>

#include "core/error.h"
#include "search/objectives.h"
#include "search/predictor.h"
#include "search/search.h"
#include "train/workers.h"

namespace nas::search {
namespace {

// A GP regression on genotypes: fit() conditions it on observations (standardized), predict()
// gives the posterior in the same standardized units.
class Gp {
 public:
  explicit Gp(const Encoding& e) : enc_(&e) {}

  // Ordered decisions: one coordinate, option index / (options - 1). Unordered ones (an mlp
  // layer's activation): one-hot scaled by 1/sqrt(2), so that any two different options are at
  // distance 1, as far apart as an ordered list's two ends.
  torch::Tensor embed(const std::vector<Genotype>& gs) const {
    const auto& d = enc_->decisions();
    int64_t cols = 0;
    for (const auto& dj : d) cols += dj.ordered ? 1 : dj.size();
    torch::Tensor x = torch::zeros({static_cast<int64_t>(gs.size()), cols}, torch::kFloat64);
    auto a = x.accessor<double, 2>();
    for (size_t i = 0; i < gs.size(); ++i) {
      int64_t c = 0;
      for (size_t j = 0; j < d.size(); ++j) {
        const auto row = static_cast<int64_t>(i);
        if (d[j].ordered) {
          a[row][c++] = d[j].size() > 1 ? gs[i][j] / double(d[j].size() - 1) : 0;
        } else {
          a[row][c + gs[i][j]] = 1.0 / std::sqrt(2.0);
          c += d[j].size();
        }
      }
    }
    return x;
  }

  // Conditions the GP on (xs, ys), ys standardized by their mean and standard deviation. The
  // hyperparameters come from the log marginal likelihood over a grid, refitted when the data grew
  // by 10% (at least 10 points) since the last fit; in between, one factorization per call (8 of
  // them at 500 observations took ~64 ms). False when no setting gave a positive definite kernel:
  // then predict() must not be called.
  bool fit(const std::vector<Genotype>& xs, const std::vector<double>& ys) {
    X_ = embed(xs);
    torch::Tensor y = torch::tensor(ys, torch::kFloat64);
    mu_ = y.mean().item<double>();
    sd_ = ys.size() > 1 ? y.std().item<double>() : 1.0;
    if (!(sd_ > 1e-12)) sd_ = 1.0;
    yn_ = ((y - mu_) / sd_).unsqueeze(1);
    const int64_t n = X_.size(0);
    const double dim = std::sqrt(static_cast<double>(std::max<size_t>(1, enc_->size())));
    D_ = torch::cdist(X_, X_);
    double ll = 0;
    L_ = torch::Tensor();
    if (fitted_n_ > 0 && n < fitted_n_ + std::max<int64_t>(10, fitted_n_ / 10) && factor(ell_, noise_, L_, alpha_, ll))
      return true;
    double best_ll = -1e300, best_ell = ell_, best_noise = noise_;
    for (double e : {0.1, 0.2, 0.4, 0.8}) {
      for (double noise : {1e-4, 1e-2}) {
        torch::Tensor L, alpha;
        if (!factor(e * dim, noise, L, alpha, ll) || ll <= best_ll) continue;
        best_ll = ll;
        best_ell = e * dim;
        best_noise = noise;
        L_ = L;
        alpha_ = alpha;
      }
    }
    if (!L_.defined()) return false;
    ell_ = best_ell;
    noise_ = best_noise;
    fitted_n_ = n;
    return true;
  }

  // Posterior mean and standard deviation at the embedded genotypes P, standardized.
  std::pair<torch::Tensor, torch::Tensor> predict(const torch::Tensor& P) const {
    torch::Tensor Ks = matern52(torch::cdist(P, X_), ell_);  // [m, n]
    torch::Tensor mean = Ks.matmul(alpha_).squeeze(1);
    torch::Tensor v = torch::linalg::solve_triangular(L_, Ks.t(), /*upper=*/false, /*left=*/true,
                                                      /*unitriangular=*/false);
    torch::Tensor var = (1.0 + noise_ - v.pow(2).sum(0)).clamp_min(1e-12);
    return {mean, var.sqrt()};
  }

  double best_standardized() const { return yn_.max().item<double>(); }
  double mean() const { return mu_; }
  double sd() const { return sd_; }

 private:
  static torch::Tensor matern52(const torch::Tensor& dist, double ell) {
    torch::Tensor r = dist / ell;
    const double s5 = std::sqrt(5.0);
    return (1 + s5 * r + 5.0 / 3.0 * r * r) * torch::exp(-s5 * r);
  }

  // The Cholesky factor and the log marginal likelihood at one setting; false when K is not
  // positive definite there.
  bool factor(double ell, double noise, torch::Tensor& L, torch::Tensor& alpha, double& ll) const {
    const int64_t n = X_.size(0);
    torch::Tensor K = matern52(D_, ell) + (noise + 1e-8) * torch::eye(n, torch::kFloat64);
    try {
      L = torch::linalg::cholesky(K);
    } catch (const c10::Error&) {
      return false;
    }
    alpha = torch::cholesky_solve(yn_, L);
    ll = -0.5 * (yn_ * alpha).sum().item<double>() - L.diagonal().log().sum().item<double>();
    return true;
  }

  const Encoding* enc_;  // a pointer: the strategies keep one GP per objective in a vector
  torch::Tensor X_, D_, yn_, L_, alpha_;
  double mu_ = 0, sd_ = 1;
  // The hyperparameters and the number of observations they were fitted on (0: never).
  double ell_ = 1, noise_ = 1e-2;
  int64_t fitted_n_ = 0;
};

// The genotypes an acquisition is maximized over, each once and none told before: every one-step
// neighbour of `centre`, `mutations` mutations of each of `parents`, then `randoms` random ones.
std::vector<Genotype> acquisition_pool(const Encoding& enc, const std::set<Genotype>& told, const Genotype& centre,
                                       const std::vector<Genotype>& parents, int mutations, int randoms,
                                       double mutation_prob, Rng& rng) {
  std::vector<Genotype> pool;
  std::set<Genotype> in_pool;
  auto add = [&](const Genotype& g) {
    if (!told.count(g) && in_pool.insert(g).second) pool.push_back(g);
  };
  for (const auto& n : enc.neighbours(centre)) add(n);
  for (const auto& p : parents)
    for (int m = 0; m < mutations; ++m) add(enc.mutate(p, rng, mutation_prob));
  for (int r = 0; r < randoms; ++r) add(enc.random(rng));
  return pool;
}

// A random genotype not told before (after 1000 tries, any).
Genotype untold_random(const Encoding& enc, const std::set<Genotype>& told, Rng& rng) {
  for (int tries = 0; tries < 1000; ++tries) {
    Genotype g = enc.random(rng);
    if (!told.count(g)) return g;
  }
  return enc.random(rng);
}

class Bayesian : public Strategy {
 public:
  Bayesian(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o), n_init_(bayesian_warmup(o)), gp_(e) {}
  std::string name() const override { return "bayesian"; }

  std::optional<Genotype> ask(Rng& rng) override {
    if (static_cast<int64_t>(ys_.size()) < n_init_) {
      origin_ = "random";
      return untold_random(enc_, told_, rng);
    }
    origin_ = "expected-improvement";
    std::vector<size_t> order(ys_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ys_[a] > ys_[b]; });
    std::vector<Genotype> best5;
    for (size_t t = 0; t < std::min<size_t>(5, order.size()); ++t) best5.push_back(xs_[order[t]]);
    auto pool = acquisition_pool(enc_, told_, xs_[order[0]], best5, 20, 200, o_.mutation_prob, rng);
    if (pool.empty()) {  // everything nearby told: let the driver's cache decide
      origin_ = "random";
      return enc_.random(rng);
    }
    torch::Tensor ei = expected_improvement(pool);
    int64_t best = ei.argmax().item<int64_t>();
    return pool[static_cast<size_t>(best)];
  }

  void tell(const Genotype& g, bool feasible, double score) override {
    told_.insert(g);
    if (!feasible) return;  // no score: the GP models accuracy of feasible children only
    xs_.push_back(g);
    ys_.push_back(score);
  }

 private:
  torch::Tensor expected_improvement(const std::vector<Genotype>& pool) {
    torch::NoGradGuard g;
    train::ThreadsScope one_thread(1);
    const bool fitted = gp_.fit(xs_, ys_);
    torch::Tensor P = gp_.embed(pool);
    if (!fitted) return torch::rand({P.size(0)}, torch::kFloat64);  // degenerate: any
    auto [mean, sigma] = gp_.predict(P);
    const double best_y = gp_.best_standardized();
    const double xi = 0.01;
    torch::Tensor z = (mean - best_y - xi) / sigma;
    torch::Tensor cdf = 0.5 * (1 + torch::erf(z / std::sqrt(2.0)));
    torch::Tensor pdf = torch::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
    return (mean - best_y - xi) * cdf + sigma * pdf;
  }

  const Encoding& enc_;
  StrategyOptions o_;
  int64_t n_init_;
  std::vector<Genotype> xs_;
  std::vector<double> ys_;
  std::set<Genotype> told_;
  Gp gp_;
};

constexpr int kEhviDraws = 64;  // standard normal draws per objective in the Monte Carlo expectation
constexpr size_t kEhviParents = 10;      // front members whose mutations enter the pool
constexpr size_t kEhviInfeasible = 200;  // the most recent infeasible children the GPs are told

class Ehvi : public Strategy {
 public:
  Ehvi(const Encoding& e, const StrategyOptions& o)
      : enc_(e), o_(o), n_init_(bayesian_warmup(o)), extremes_(e.extremes()), reference_(o.hv_reference) {
    Rng draws(0x6568766964726177ULL);  // fixed: the same draws for every candidate and every search
    for (auto& z : z_) {
      z.resize(kEhviDraws);
      for (double& v : z) v = standard_normal(draws);
    }
  }
  std::string name() const override { return "ehvi"; }

  std::optional<Genotype> ask(Rng& rng) override {
    while (next_extreme_ < extremes_.size()) {
      const Genotype& g = extremes_[next_extreme_++];
      if (!told_.count(g)) {
        origin_ = "extreme";
        return g;
      }
    }
    if (randoms_ < n_init_ || points_.empty()) {  // the warm-up, or nothing feasible yet
      origin_ = "random";
      ++randoms_;
      return untold_random(enc_, told_, rng);
    }
    origin_ = "expected-hypervolume-improvement";
    const std::vector<size_t> front = front_members();
    const Genotype centre = xs_[front[static_cast<size_t>(asks_++) % front.size()]];
    std::vector<size_t> members = front;  // at most kEhviParents of them, drawn when there are more
    if (members.size() > kEhviParents) {
      rng.shuffle(members);
      members.resize(kEhviParents);
    }
    std::vector<Genotype> parents;
    for (size_t i : members) parents.push_back(xs_[i]);
    auto pool = acquisition_pool(enc_, told_, centre, parents, 20, 200, o_.mutation_prob, rng);
    if (pool.empty()) {  // everything nearby told: let the driver's cache decide
      origin_ = "random";
      return enc_.random(rng);
    }
    const std::vector<double> ehvi = expected_improvements(pool, front);
    return pool[static_cast<size_t>(std::max_element(ehvi.begin(), ehvi.end()) - ehvi.begin())];
  }

  // Without objectives (a single-objective search), the score is the one objective.
  void tell(const Genotype& g, bool feasible, double score) override {
    if (!told_.insert(g).second) return;
    if (!feasible) {
      infeasible_.push_back(g);
      if (infeasible_.size() > kEhviInfeasible) infeasible_.erase(infeasible_.begin());
      return;
    }
    xs_.push_back(g);
    points_.push_back(told_objectives().empty() ? Point{-score} : told_objectives());
  }

 private:
  static double standard_normal(Rng& rng) {
    const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();  // u1 in (0, 1]
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }

  // Indices of the told points no other told point dominates.
  std::vector<size_t> front_members() const { return nondominated_fronts(points_).front(); }

  // The search's reference point; without one (a strategy used outside nas-search), each
  // objective's worst told value plus a tenth of its range.
  Point reference() const {
    if (!reference_.empty()) return reference_;
    Point ref = points_.front(), lo = points_.front();
    for (const auto& p : points_)
      for (size_t j = 0; j < p.size(); ++j) {
        ref[j] = std::max(ref[j], p[j]);
        lo[j] = std::min(lo[j], p[j]);
      }
    for (size_t j = 0; j < ref.size(); ++j) ref[j] += 0.1 * (ref[j] - lo[j]) + 1e-9;
    return ref;
  }

  std::vector<double> expected_improvements(const std::vector<Genotype>& pool, const std::vector<size_t>& front) {
    torch::NoGradGuard no_grad;
    train::ThreadsScope one_thread(1);
    const size_t m = points_.front().size();
    NAS_CHECK(m <= z_.size(), Error, "ehvi: expected at most " << z_.size() << " objectives, found " << m);
    gps_.resize(m, Gp(enc_));
    torch::Tensor P = gps_[0].embed(pool);
    std::vector<std::vector<double>> mean(m), sd(m);  // each objective's posterior, in its own units
    // Infeasible children (outside a bound the strategy does not see) enter every GP at the worst
    // value told of each objective: the acquisition learns to avoid their neighbourhood.
    std::vector<Genotype> xs = xs_;
    xs.insert(xs.end(), infeasible_.begin(), infeasible_.end());
    for (size_t j = 0; j < m; ++j) {
      std::vector<double> ys;
      for (const auto& p : points_) ys.push_back(p[j]);
      const double worst = *std::max_element(ys.begin(), ys.end());
      ys.resize(xs.size(), worst);
      if (!gps_[j].fit(xs, ys)) return std::vector<double>(pool.size(), 0.0);  // degenerate: the first
      auto [mu, sigma] = gps_[j].predict(P);
      mean[j] = values(mu * gps_[j].sd() + gps_[j].mean());
      sd[j] = values(sigma * gps_[j].sd());
    }
    std::vector<Point> front_points;
    for (size_t i : front) front_points.push_back(points_[i]);
    const Point ref = m > 1 ? reference() : Point{};
    const double hv = m > 1 ? hypervolume(front_points, ref) : 0.0;
    Point best = points_.front();  // each objective's best told value
    for (const auto& q : points_)
      for (size_t j = 0; j < m; ++j) best[j] = std::min(best[j], q[j]);
    auto draw = [&](size_t j, size_t c, int s) { return mean[j][c] + sd[j][c] * z_[j][static_cast<size_t>(s)]; };
    std::vector<double> out(pool.size(), 0.0);
    Point p(m);
    for (size_t c = 0; c < pool.size(); ++c) {
      for (int s = 0; s < kEhviDraws; ++s) {
        for (size_t j = 0; j < m; ++j) p[j] = draw(j, c, s);
        // One objective: how far the draw falls below the best told value.
        out[c] += m > 1 ? improvement(front_points, hv, p, ref) : std::max(0.0, best[0] - p[0]);
      }
    }
    if (*std::max_element(out.begin(), out.end()) > 0) return out;
    // No draw adds hypervolume (e.g. a reference no child has reached yet): each objective's
    // expected gain over its best told value, in units of its spread, summed over the objectives.
    for (size_t c = 0; c < pool.size(); ++c)
      for (size_t j = 0; j < m; ++j)
        for (int s = 0; s < kEhviDraws; ++s) out[c] += std::max(0.0, best[j] - draw(j, c, s)) / gps_[j].sd();
    return out;
  }

  static std::vector<double> values(const torch::Tensor& t) {
    torch::Tensor c = t.contiguous();
    return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
  }

  // The hypervolume p adds to `front` (whose hypervolume is hv).
  static double improvement(const std::vector<Point>& front, double hv, const Point& p, const Point& ref) {
    for (size_t j = 0; j < p.size(); ++j)
      if (!(p[j] < ref[j])) return 0;
    for (const auto& q : front) {
      bool weakly = true;
      for (size_t j = 0; j < p.size() && weakly; ++j) weakly = q[j] <= p[j];
      if (weakly) return 0;
    }
    std::vector<Point> with = front;
    with.push_back(p);
    return hypervolume(with, ref) - hv;
  }

  const Encoding& enc_;
  StrategyOptions o_;
  int64_t n_init_;
  std::vector<Genotype> extremes_;
  size_t next_extreme_ = 0;
  Point reference_;
  std::array<std::vector<double>, 3> z_;  // the standard normal draws of each objective
  std::vector<Genotype> xs_;
  std::vector<Point> points_;  // each feasible child's objectives, minimized
  std::vector<Genotype> infeasible_;
  std::set<Genotype> told_;
  std::vector<Gp> gps_;  // one per objective
  int64_t randoms_ = 0;  // random children asked for (the warm-up)
  int64_t asks_ = 0;     // proposals from the model, to take the front's members in turn
};

}  // namespace

std::unique_ptr<Strategy> make_bayesian(const Encoding& enc, const StrategyOptions& o, uint64_t) {
  return std::make_unique<Bayesian>(enc, o);
}

std::unique_ptr<Strategy> make_ehvi(const Encoding& enc, const StrategyOptions& o) {
  return std::make_unique<Ehvi>(enc, o);
}

}  // namespace nas::search
