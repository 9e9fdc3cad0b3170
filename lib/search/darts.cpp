#include "search/darts.h"

#include <cmath>
#include <queue>
#include <set>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rng.h"
#include "families/cell/cell.h"
#include "families/family.h"

namespace nas::search {

DartsRelaxation::DartsRelaxation(supernet::Supernet net, const DartsOptions& o) : net_(std::move(net)), o_(o) {
  const auto& space = net_->space();
  NAS_CHECK(families::of(space).has_relaxation(), UsageError,
            "--strategy darts: space \"" << space.name << "\" is family " << space.family
                                         << ", which has no continuous relaxation; DARTS needs a cell space");
  const auto& s = families::cell::space_of(space);
  const int64_t edges = s.num_edges(), ops = static_cast<int64_t>(s.ops.size());
  // DARTS's initialization: 1e-3 times standard normal, seeded.
  torch::Generator gen = at::detail::createCPUGenerator(o.seed);
  auto init = [&] {
    return (1e-3 * torch::randn({edges, ops}, gen)).to(o.device).set_requires_grad(true);
  };
  alpha_normal = init();
  alpha_reduce = init();
  weights_ = net_->parameters();
  alpha_opt_ = std::make_unique<torch::optim::Adam>(
      std::vector<torch::Tensor>{alpha_normal, alpha_reduce},
      torch::optim::AdamOptions(o.alpha_lr).betas({0.5, 0.999}).weight_decay(o.alpha_weight_decay));
  w_opt_ = std::make_unique<torch::optim::SGD>(
      weights_, torch::optim::SGDOptions(o.w_lr).momentum(o.w_momentum).weight_decay(o.w_weight_decay));
}

namespace {
torch::Tensor task_loss(const torch::Tensor& logits, const torch::Tensor& y) {
  if (y.is_floating_point()) return torch::mse_loss(logits.squeeze(1), y);
  return torch::cross_entropy_loss(logits, y);
}
}  // namespace

torch::Tensor DartsRelaxation::loss(const torch::Tensor& x, const torch::Tensor& y) {
  return task_loss(net_->forward_mixed(x, normal_weights(), reduce_weights()), y);
}

void DartsRelaxation::arch_gradient(const data::Batch& train, const data::Batch& val) {
  std::vector<torch::Tensor> alphas = {alpha_normal, alpha_reduce};
  // A space without reduction cells (one stage) or without normal cells leaves one set unused: its
  // gradient is zero.
  auto grad_or_zero = [&](const torch::Tensor& g, size_t i) { return g.defined() ? g : torch::zeros_like(alphas[i]); };
  auto set_grads = [&](const std::vector<torch::Tensor>& g) {
    for (size_t i = 0; i < alphas.size(); ++i) alphas[i].mutable_grad() = grad_or_zero(g[i], i).detach().clone();
  };
  auto alpha_grads = [&](const torch::Tensor& l) {
    return torch::autograd::grad({l}, alphas, {}, false, false, /*allow_unused=*/true);
  };
  if (!o_.second_order) {
    set_grads(alpha_grads(loss(val.x, val.y)));
    return;
  }
  // Second order: grad_alpha L_val(w', alpha) with w' = w - xi * grad_w L_train(w, alpha) (one SGD step
  // without momentum), which is grad_alpha L_val(w', alpha) - xi * H v, where H = d2 L_train /
  // (d alpha d w) and v = grad_w' L_val(w', alpha); H v by central differences at w +- eps v,
  // eps = fd_radius / |v| (DARTS, eq. 7-8).
  const double xi = o_.w_lr;
  std::vector<torch::Tensor> backup;
  for (auto& w : weights_) backup.push_back(w.detach().clone());
  auto restore = [&] {
    torch::NoGradGuard g;
    for (size_t i = 0; i < weights_.size(); ++i) weights_[i].copy_(backup[i]);
  };
  auto gw = torch::autograd::grad({loss(train.x, train.y)}, weights_, {}, false, false, /*allow_unused=*/true);
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < weights_.size(); ++i) {
      torch::Tensor step = o_.w_weight_decay * weights_[i];
      if (gw[i].defined()) step = step + gw[i];
      weights_[i].sub_(xi * step);
    }
  }
  std::vector<torch::Tensor> inputs = alphas;
  inputs.insert(inputs.end(), weights_.begin(), weights_.end());
  auto g = torch::autograd::grad({loss(val.x, val.y)}, inputs, {}, false, false, /*allow_unused=*/true);
  restore();
  std::vector<torch::Tensor> v(weights_.size());
  double norm2 = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    v[i] = g[alphas.size() + i].defined() ? g[alphas.size() + i] : torch::zeros_like(weights_[i]);
    norm2 += v[i].pow(2).sum().item<double>();
  }
  const double eps = o_.fd_radius / std::max(std::sqrt(norm2), 1e-12);
  auto grad_alpha_at = [&](double sign) {
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < weights_.size(); ++i) weights_[i].add_(sign * eps * v[i]);
    }
    auto ga = alpha_grads(loss(train.x, train.y));
    restore();
    for (size_t i = 0; i < ga.size(); ++i) ga[i] = grad_or_zero(ga[i], i);
    return ga;
  };
  auto gp = grad_alpha_at(+1), gn = grad_alpha_at(-1);
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < alphas.size(); ++i) out.push_back(grad_or_zero(g[i], i) - xi * (gp[i] - gn[i]) / (2 * eps));
  set_grads(out);
}

std::pair<double, double> DartsRelaxation::step(const data::Batch& train, const data::Batch& val) {
  net_->train();
  double val_loss;
  {
    torch::NoGradGuard g;  // for the report only
    val_loss = loss(val.x, val.y).item<double>();
  }
  arch_gradient(train, val);
  alpha_opt_->step();
  double train_loss;
  {
    // The weight step sees the architecture weights as constants.
    torch::Tensor l = task_loss(
        net_->forward_mixed(train.x, normal_weights().detach(), reduce_weights().detach()), train.y);
    train_loss = l.item<double>();
    if (o_.train_weights) {
      w_opt_->zero_grad();
      l.backward();
      if (o_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(weights_, o_.grad_clip);
      w_opt_->step();
    }
  }
  return {train_loss, val_loss};
}

namespace {
data::Batch draw(const data::ImageSet& set, const std::vector<int64_t>& pool, int n, Rng& rng,
                 const data::LoaderOptions& lo, torch::Device dev) {
  std::vector<int64_t> idx;
  std::set<size_t> seen;
  const size_t want = std::min(pool.size(), static_cast<size_t>(n));
  while (idx.size() < want) {
    size_t k = rng.below(pool.size());
    if (seen.insert(k).second) idx.push_back(pool[k]);
  }
  data::Batch b = data::make_batch(set, idx, lo, rng.next_u64());
  b.x = b.x.to(dev);
  b.y = b.y.to(dev);
  return b;
}
}  // namespace

DartsReport run_darts(supernet::Supernet net, const data::ImageSet& set, const std::vector<int64_t>& w_idx,
                      const std::vector<int64_t>& a_idx, const DartsOptions& o,
                      const std::function<void(int64_t)>& on_step) {
  NAS_CHECK(!w_idx.empty() && !a_idx.empty(), SpecError,
            "--strategy darts: expected training images for both the weights and the architecture, found "
                << w_idx.size() << " and " << a_idx.size());
  const double t0 = now_seconds();
  DartsRelaxation rel(net, o);
  Rng rng(mix_seed(o.seed, 0xda27));
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.crop_padding = o.crop_padding;
  lo.hflip = o.hflip;
  lo.norm = o.norm;
  lo.prefetch = 0;
  DartsReport r;
  for (int64_t s = 0; s < o.steps; ++s) {
    data::Batch tb = draw(set, w_idx, o.batch_size, rng, lo, o.device);
    data::Batch vb = draw(set, a_idx, o.batch_size, rng, lo, o.device);
    auto [tl, vl] = rel.step(tb, vb);
    NAS_CHECK(std::isfinite(tl) && std::isfinite(vl), Error,
              "--strategy darts: the loss became " << (std::isfinite(tl) ? vl : tl) << " at step " << s + 1
                                                  << " (lower --darts-alpha-lr or --darts-w-lr)");
    r.train_loss.push_back(tl);
    r.val_loss.push_back(vl);
    if (on_step) on_step(s + 1);
  }
  r.normal_weights = rel.normal_weights().detach().cpu();
  r.reduce_weights = rel.reduce_weights().detach().cpu();
  r.seconds = now_seconds() - t0;
  return r;
}

std::vector<Genotype> darts_derive(const ArchEncoding& enc, const torch::Tensor& normal_weights,
                                   const torch::Tensor& reduce_weights, size_t k) {
  const auto& s = families::cell::space_of(enc.space());  // Error for another family's
  const int64_t E = s.num_edges();
  NAS_CHECK(enc.size() == static_cast<size_t>(1 + 2 * E), Error, "darts_derive: expected the encoding of a cell space");
  // Per decision (after the resolution): its options other than none, strongest first.
  std::vector<std::vector<std::pair<double, int>>> ranked;
  const Genotype zero(enc.size(), 0);
  for (int64_t d = 0; d < 2 * E; ++d) {
    if (!enc.active(zero, static_cast<size_t>(d + 1))) {  // a kind of cell the network lacks
      ranked.push_back({{0.0, 0}});
      continue;
    }
    torch::Tensor row = (d < E ? normal_weights[d] : reduce_weights[d - E]).to(torch::kDouble).cpu();
    std::vector<std::pair<double, int>> opts;
    for (size_t op = 0; op < s.ops.size(); ++op)
      if (s.ops[op] != "none")
        opts.push_back({std::log(std::max(row[static_cast<int64_t>(op)].item<double>(), 1e-300)), static_cast<int>(op)});
    std::stable_sort(opts.begin(), opts.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    ranked.push_back(opts);
  }
  // Best-first enumeration of rank vectors (each child's successors move one edge one rank down).
  using Node = std::pair<double, std::vector<int>>;
  auto score = [&](const std::vector<int>& r) {
    double t = 0;
    for (size_t d = 0; d < r.size(); ++d) t += ranked[d][static_cast<size_t>(r[d])].first;
    return t;
  };
  std::priority_queue<Node> queue;
  std::set<std::vector<int>> seen;
  std::vector<int> first(ranked.size(), 0);
  queue.push({score(first), first});
  seen.insert(first);
  std::vector<Genotype> out;
  while (!queue.empty() && out.size() < k) {
    auto [sc, r] = queue.top();
    queue.pop();
    Genotype g(enc.size(), 0);
    for (size_t d = 0; d < r.size(); ++d) g[d + 1] = ranked[d][static_cast<size_t>(r[d])].second;
    out.push_back(g);
    for (size_t d = 0; d < r.size(); ++d) {
      if (static_cast<size_t>(r[d]) + 1 >= ranked[d].size()) continue;
      std::vector<int> next = r;
      ++next[d];
      if (seen.insert(next).second) queue.push({score(next), next});
    }
  }
  return out;
}

}  // namespace nas::search
