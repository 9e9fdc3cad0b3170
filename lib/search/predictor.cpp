#include "search/predictor.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/hash.h"
#include "core/rng.h"
#include "train/workers.h"

namespace nas::search {


double kendall_tau(const std::vector<double>& a, const std::vector<double>& b) {
  size_t n = std::min(a.size(), b.size());
  double s = 0, pairs = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      double x = (a[i] > a[j]) - (a[i] < a[j]);
      double y = (b[i] > b[j]) - (b[i] < b[j]);
      s += x * y;
      pairs += 1;
    }
  return pairs > 0 ? s / pairs : 0.0;
}

struct AccuracyPredictor::Impl {
  const Encoding& enc;
  int members;
  uint64_t seed;
  int64_t width = 0;
  std::vector<torch::nn::Sequential> nets;
  double mean = 0, scale = 1;
  PredictorReport report;

  Impl(const Encoding& e, int m, uint64_t s) : enc(e), members(m), seed(s) {
    for (const auto& d : e.decisions()) width += d.size();
  }

  torch::Tensor features(const std::vector<Genotype>& gs) const {
    torch::Tensor x = torch::zeros({static_cast<int64_t>(gs.size()), width});
    auto a = x.accessor<float, 2>();
    for (size_t i = 0; i < gs.size(); ++i) {
      int64_t off = 0;
      for (size_t j = 0; j < enc.size(); ++j) {
        if (enc.active(gs[i], j)) a[static_cast<int64_t>(i)][off + gs[i][j]] = 1.0f;
        off += enc.decisions()[j].size();
      }
    }
    return x;
  }

  // Trains a fresh ensemble on (xs, ys).
  void train(const std::vector<Genotype>& xs, const std::vector<double>& ys) {
    double m = 0;
    for (double y : ys) m += y;
    m /= static_cast<double>(ys.size());
    double v = 0;
    for (double y : ys) v += (y - m) * (y - m);
    double sd = std::sqrt(v / static_cast<double>(ys.size()));
    mean = m;
    scale = sd > 1e-12 ? sd : 1.0;
    torch::Tensor X = features(xs);
    std::vector<float> yn;
    for (double y : ys) yn.push_back(static_cast<float>((y - mean) / scale));
    torch::Tensor Y = torch::tensor(yn).unsqueeze(1);
    nets.clear();
    const int64_t n = X.size(0);
    for (int k = 0; k < members; ++k) {
      torch::manual_seed(mix_seed(seed, 0x9e7, static_cast<uint64_t>(k)));
      torch::nn::Sequential net(torch::nn::Linear(width, 64), torch::nn::ReLU(), torch::nn::Linear(64, 64),
                                torch::nn::ReLU(), torch::nn::Linear(64, 1));
      // Bagging: each member sees a bootstrap sample (the first member sees every point once).
      Rng rng(mix_seed(seed, 0xb007, static_cast<uint64_t>(k)));
      std::vector<int64_t> idx(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = k == 0 ? i : static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
      torch::Tensor I = torch::tensor(idx);
      torch::Tensor Xk = X.index_select(0, I), Yk = Y.index_select(0, I);
      torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2).weight_decay(1e-4));
      for (int epoch = 0; epoch < 300; ++epoch) {
        opt.zero_grad();
        torch::Tensor loss = torch::mse_loss(net->forward(Xk), Yk);
        loss.backward();
        opt.step();
      }
      net->eval();
      nets.push_back(net);
    }
  }

  torch::Tensor predict_all(const std::vector<Genotype>& gs) const {  // [members, n], in score units
    torch::NoGradGuard g;
    torch::Tensor X = features(gs);
    std::vector<torch::Tensor> outs;
    for (auto net : nets) outs.push_back(net->forward(X).squeeze(1) * scale + mean);  // a holder copy: forward is not const
    return torch::stack(outs);
  }
};

AccuracyPredictor::AccuracyPredictor(const Encoding& enc, int members, uint64_t seed)
    : impl_(std::make_unique<Impl>(enc, std::max(1, members), seed)) {}
AccuracyPredictor::~AccuracyPredictor() = default;

PredictorReport AccuracyPredictor::fit(const std::vector<Genotype>& xs, const std::vector<double>& ys) {
  train::ThreadsScope one_thread(1);
  NAS_CHECK(xs.size() == ys.size() && xs.size() >= 3, UsageError,
            "predictor: expected at least 3 evaluated candidates to learn from, found " << xs.size());
  PredictorReport r;
  r.points = static_cast<int64_t>(xs.size());
  if (xs.size() >= 10) {
    // Validation round: a seeded fifth held out.
    std::vector<size_t> order(xs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    Rng rng(mix_seed(impl_->seed, 0x7a1d));
    rng.shuffle(order);
    size_t hold = std::max<size_t>(2, xs.size() / 5);
    std::vector<Genotype> tx, vx;
    std::vector<double> ty, vy;
    for (size_t i = 0; i < order.size(); ++i) {
      (i < hold ? vx : tx).push_back(xs[order[i]]);
      (i < hold ? vy : ty).push_back(ys[order[i]]);
    }
    impl_->train(tx, ty);
    torch::Tensor p = impl_->predict_all(vx).mean(0);
    std::vector<double> pv(vy.size());
    double se = 0;
    for (size_t i = 0; i < vy.size(); ++i) {
      pv[i] = p[static_cast<int64_t>(i)].item<double>();
      se += (pv[i] - vy[i]) * (pv[i] - vy[i]);
    }
    r.val_points = static_cast<int64_t>(vy.size());
    r.val_rmse = std::sqrt(se / static_cast<double>(vy.size()));
    r.val_kendall_tau = kendall_tau(pv, vy);
  }
  impl_->train(xs, ys);
  impl_->report = r;
  return r;
}

bool AccuracyPredictor::fitted() const { return !impl_->nets.empty(); }

double AccuracyPredictor::predict(const Genotype& g) const {
  NAS_CHECK(fitted(), Error, "predictor: predict() before fit()");
  train::ThreadsScope one_thread(1);
  return impl_->predict_all({g}).mean().item<double>();
}

std::vector<double> AccuracyPredictor::predict_many(const std::vector<Genotype>& gs) const {
  NAS_CHECK(fitted(), Error, "predictor: predict_many() before fit()");
  if (gs.empty()) return {};
  torch::Tensor p = impl_->predict_all(gs).mean(0).to(torch::kDouble).contiguous();
  return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
}

double AccuracyPredictor::uncertainty(const Genotype& g) const {
  NAS_CHECK(fitted(), Error, "predictor: uncertainty() before fit()");
  train::ThreadsScope one_thread(1);
  torch::Tensor p = impl_->predict_all({g});
  return p.size(0) > 1 ? p.std().item<double>() : 0.0;
}

const PredictorReport& AccuracyPredictor::report() const { return impl_->report; }

PredictorEstimator::PredictorEstimator(const Encoding& enc, const std::vector<spec::SearchResult>& data,
                                       const std::string& what, uint64_t seed, const std::vector<std::string>& files)
    : enc_(enc), predictor_(enc, 5, seed) {
  std::vector<Genotype> xs;
  std::vector<double> ys;
  std::set<std::string> seen;
  for (size_t i = 0; i < data.size(); ++i)
    for (const auto& c : data[i].candidates) {
      if (!c.evaluated || !seen.insert(c.hash).second) continue;
      // SpecError, naming the file and the candidate, when it is not a child of this space.
      const std::string where = (i < files.size() ? files[i] : what) + ": candidates[" + std::to_string(c.index) + "].arch";
      xs.push_back(c.generic_arch.is_null() ? enc.from_json(spec::to_json(c.arch), where)
                                            : enc.from_json(c.generic_arch, where));
      ys.push_back(c.val_acc);
    }
  NAS_CHECK(xs.size() >= 10, UsageError,
            what << ": expected at least 10 evaluated candidates to learn from, found " << xs.size());
  predictor_.fit(xs, ys);
}

Score PredictorEstimator::predicted(const Genotype& g) const {
  Score s;
  s.acc = std::min(1.0, predictor_.predict(g));  // accuracy or R^2: at most 1 (R^2 may be negative)
  s.loss = std::nan("");
  return s;
}

Score PredictorEstimator::score(const spec::Arch& arch) { return predicted(enc_.from_json(spec::to_json(arch), "arch")); }

Score PredictorEstimator::score_generic(const spec::json& child) { return predicted(enc_.from_json(child, "arch")); }

}  // namespace nas::search
