// Bayesian optimization over genotypes: a Gaussian process with expected improvement, computed with
// LibTorch tensors (float64).
//
// A GP beside TPE (search/tpe.cpp): budgets in NAS with a supernet are tens to a few hundred
// evaluations, where a GP's posterior is cheap (a Cholesky factorization of at most a few hundred
// points) and its uncertainty is calibrated between evaluated points; TPE needs more observations
// to shape its two densities, but costs little per proposal and models categories natively. Most decisions are ordered option lists (widths, kernels, depths), so an ordinal
// embedding (option index / (options - 1)) puts neighbouring options close, as the weights they
// share make them in accuracy; unordered ones (activations) are one-hot.
//
// Model: zero-mean GP on standardized scores, Matern-5/2 kernel on the embedding, lengthscale and
// noise chosen by the log marginal likelihood over a small grid at each step. Acquisition: expected
// improvement, maximized over a pool of 200 random genotypes, 100 mutations of the best five and every
// one-step neighbour of the best; genotypes already told are never proposed again. The first
// observations come from random genotypes (StrategyOptions::bo_init, by default
// max(5, min(10, budget / 10)) of them: measured better than 20 at a budget of 150).
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "search/predictor.h"
#include "search/search.h"
#include "train/workers.h"

namespace nas::search {
namespace {

class Bayesian : public Strategy {
 public:
  Bayesian(const Encoding& e, const StrategyOptions& o)
      : enc_(e), o_(o), n_init_(bayesian_warmup(o)) {}
  std::string name() const override { return "bayesian"; }

  std::optional<Genotype> ask(Rng& rng) override {
    if (static_cast<int64_t>(ys_.size()) < n_init_) {
      origin_ = "random";
      for (int tries = 0; tries < 1000; ++tries) {
        Genotype g = enc_.random(rng);
        if (!told_.count(g)) return g;
      }
      return enc_.random(rng);
    }
    origin_ = "expected-improvement";
    // The pool of candidates the acquisition is maximized over.
    std::vector<Genotype> pool;
    std::set<Genotype> in_pool;
    auto add = [&](const Genotype& g) {
      if (!told_.count(g) && in_pool.insert(g).second) pool.push_back(g);
    };
    std::vector<size_t> order(ys_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ys_[a] > ys_[b]; });
    for (const auto& n : enc_.neighbours(xs_[order[0]])) add(n);
    for (size_t t = 0; t < std::min<size_t>(5, order.size()); ++t)
      for (int m = 0; m < 20; ++m) add(enc_.mutate(xs_[order[t]], rng, o_.mutation_prob));
    for (int r = 0; r < 200; ++r) add(enc_.random(rng));
    if (pool.empty()) return enc_.random(rng);  // everything nearby told: let the driver's cache decide

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
  // Ordered decisions: one coordinate, option index / (options - 1). Unordered ones (an mlp
  // layer's activation): one-hot scaled by 1/sqrt(2), so that any two different options are at
  // distance 1, as far apart as an ordered list's two ends.
  torch::Tensor embed(const std::vector<Genotype>& gs) const {
    const auto& d = enc_.decisions();
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
  static torch::Tensor matern52(const torch::Tensor& dist, double ell) {
    torch::Tensor r = dist / ell;
    const double s5 = std::sqrt(5.0);
    return (1 + s5 * r + 5.0 / 3.0 * r * r) * torch::exp(-s5 * r);
  }

  torch::Tensor expected_improvement(const std::vector<Genotype>& pool) {
    torch::NoGradGuard g;
    train::ThreadsScope one_thread(1);
    torch::Tensor X = embed(xs_);
    torch::Tensor y = torch::tensor(ys_, torch::kFloat64);
    double mu = y.mean().item<double>();
    double sd = ys_.size() > 1 ? y.std().item<double>() : 1.0;
    if (!(sd > 1e-12)) sd = 1.0;
    torch::Tensor yn = ((y - mu) / sd).unsqueeze(1);
    const int64_t n = X.size(0);
    const double dim = std::sqrt(static_cast<double>(std::max<size_t>(1, enc_.size())));
    torch::Tensor D = torch::cdist(X, X);
    torch::Tensor best_L, best_alpha;
    double best_ell = ell_, best_noise = noise_;
    // The Cholesky factor and the log marginal likelihood at one setting; false when K is not
    // positive definite there.
    auto factor = [&](double ell, double noise, torch::Tensor& L, torch::Tensor& alpha, double& ll) {
      torch::Tensor K = matern52(D, ell) + (noise + 1e-8) * torch::eye(n, torch::kFloat64);
      try {
        L = torch::linalg::cholesky(K);
      } catch (const c10::Error&) {
        return false;
      }
      alpha = torch::cholesky_solve(yn, L);
      ll = -0.5 * (yn * alpha).sum().item<double>() - L.diagonal().log().sum().item<double>();
      return true;
    };
    // Hyperparameters by the log marginal likelihood over a grid, refitted when the data grew by
    // 10% (at least 10 points) since the last fit; in between, one factorization per proposal
    // (8 of them at 500 observations took ~64 ms).
    double ll = 0;
    bool have = fitted_n_ > 0 && n < fitted_n_ + std::max<int64_t>(10, fitted_n_ / 10) &&
                factor(ell_, noise_, best_L, best_alpha, ll);
    if (!have) {
      double best_ll = -1e300;
      for (double e : {0.1, 0.2, 0.4, 0.8}) {
        for (double noise : {1e-4, 1e-2}) {
          torch::Tensor L, alpha;
          if (!factor(e * dim, noise, L, alpha, ll) || ll <= best_ll) continue;
          best_ll = ll;
          best_ell = e * dim;
          best_noise = noise;
          best_L = L;
          best_alpha = alpha;
        }
      }
      if (best_L.defined()) {
        ell_ = best_ell;
        noise_ = best_noise;
        fitted_n_ = n;
      }
    }
    torch::Tensor P = embed(pool);
    if (!best_L.defined()) return torch::rand({P.size(0)}, torch::kFloat64);  // degenerate: any
    torch::Tensor Ks = matern52(torch::cdist(P, X), best_ell);                 // [m, n]
    torch::Tensor mean = Ks.matmul(best_alpha).squeeze(1);
    torch::Tensor v = torch::linalg::solve_triangular(best_L, Ks.t(), /*upper=*/false, /*left=*/true,
                                                      /*unitriangular=*/false);
    torch::Tensor var = (1.0 + best_noise - v.pow(2).sum(0)).clamp_min(1e-12);
    torch::Tensor sigma = var.sqrt();
    double best_y = yn.max().item<double>();
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
  // The GP's hyperparameters and the number of observations they were fitted on (0: never).
  double ell_ = 1, noise_ = 1e-2;
  int64_t fitted_n_ = 0;
};

}  // namespace

std::unique_ptr<Strategy> make_bayesian(const Encoding& enc, const StrategyOptions& o, uint64_t) {
  return std::make_unique<Bayesian>(enc, o);
}

}  // namespace nas::search
