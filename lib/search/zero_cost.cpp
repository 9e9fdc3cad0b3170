#include "search/zero_cost.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/hash.h"
#include "nn/elastic.h"
#include "train/trainer.h"

namespace nas::search {

const std::vector<std::string>& proxy_names() {
  static const std::vector<std::string> n = {"synflow", "grad-norm", "snip", "jacov", "nwot"};
  return n;
}

void check_proxy(const std::string& proxy) {
  if (std::find(proxy_names().begin(), proxy_names().end(), proxy) != proxy_names().end()) return;
  std::string all;
  for (const auto& n : proxy_names()) all += (all.empty() ? "" : ", ") + n;
  throw UsageError("--proxy: expected one of " + all + ", found " + proxy);
}

namespace {
// The conv and linear weights (every parameter of two or more dimensions).
std::vector<torch::Tensor> weights_of(families::ChildNet& net) {
  std::vector<torch::Tensor> w;
  for (const auto& p : net->parameters())
    if (p.dim() > 1) w.push_back(p);
  return w;
}

// Backpropagates the training loss of one batch (BN on batch statistics).
void loss_backward(families::ChildNet& net, const torch::Tensor& x, const torch::Tensor& y) {
  net->train();
  net->zero_grad();
  train::label_loss(net->forward(x), y).backward();
}

double synflow(families::ChildNet& net, const torch::Tensor& x) {
  net->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.abs_();
    for (auto& m : net->modules(/*include_self=*/false)) {  // BN as the identity, exactly
      const auto* bn2 = m->as<torch::nn::BatchNorm2dImpl>();
      const auto* bn1 = m->as<torch::nn::BatchNorm1dImpl>();
      if (!bn2 && !bn1) continue;
      const double eps = bn2 ? bn2->options.eps() : bn1->options.eps();
      for (auto& b : m->named_buffers(/*recurse=*/false)) {
        if (b.key() == "running_mean") b.value().zero_();
        if (b.key() == "running_var") b.value().fill_(1.0 - eps);  // (x - 0) / sqrt(1 - eps + eps)
      }
      for (auto& p : m->named_parameters(/*recurse=*/false)) p.value().fill_(p.key() == "weight" ? 1.0 : 0.0);
    }
  }
  net->eval();
  net->zero_grad();
  torch::Tensor ones = torch::ones({1, x.size(1), x.size(2), x.size(3)}, torch::kFloat64);
  net->forward(ones).sum().backward();
  double s = 0;
  for (const auto& w : weights_of(net)) s += (w * w.grad()).abs().sum().item<double>();
  return s;
}

double jacov(families::ChildNet& net, const torch::Tensor& x) {
  net->train();
  torch::Tensor in = x.clone().requires_grad_(true);
  torch::Tensor out = net->forward(in);
  out.backward(torch::ones_like(out));
  torch::Tensor j = in.grad().reshape({x.size(0), -1}).to(torch::kFloat64);
  torch::Tensor corr = torch::corrcoef(j);
  NAS_CHECK(torch::isfinite(corr).all().item<bool>(), Error,
            "jacov: undefined for this child (an image's input gradient is constant)");
  torch::Tensor v = torch::linalg::eigvalsh(corr, "L").clamp_min(0.0);
  const double k = 1e-5;
  return -(torch::log(v + k) + 1.0 / (v + k)).sum().item<double>();
}

double nwot(families::ChildNet& net, const torch::Tensor& x) {
  const int64_t n = x.size(0);
  torch::Tensor k = torch::zeros({n, n}, torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    net->train();
    nn::ActivationTapScope tap([&](const torch::Tensor& pre) {
      torch::Tensor c = (pre.reshape({n, -1}) > 0).to(torch::kFloat64);
      k += c.mm(c.t()) + (1 - c).mm((1 - c).t());
    });
    net->forward(x);
  }
  return std::get<1>(torch::linalg::slogdet(k)).item<double>();
}
}  // namespace

double zero_cost_proxy(const std::string& proxy, families::ChildNet& net, const torch::Tensor& x, const torch::Tensor& y) {
  check_proxy(proxy);
  if (proxy == "synflow") return synflow(net, x);
  if (proxy == "jacov") return jacov(net, x);
  if (proxy == "nwot") return nwot(net, x);
  loss_backward(net, x, y);
  double s = 0;
  for (const auto& w : weights_of(net)) {
    if (!w.grad().defined()) continue;
    s += proxy == "snip" ? (w * w.grad()).abs().sum().item<double>() : w.grad().norm().item<double>();
  }
  return s;
}

ZeroCostEstimator::ZeroCostEstimator(const spec::SearchSpace& space, int in_channels, int num_classes,
                                     supernet::Supernet supernet, data::Batch batch, ZeroCostOptions o)
    : space_(space), in_channels_(in_channels), num_classes_(num_classes), supernet_(std::move(supernet)),
      batch_(std::move(batch)), o_(std::move(o)) {
  check_proxy(o_.proxy);
  NAS_CHECK(o_.weights == "init" || o_.weights == "inherited", UsageError,
            "--proxy-weights: expected init or inherited, found " << o_.weights);
  NAS_CHECK(o_.weights == "init" || !supernet_.is_empty(), UsageError,
            "--proxy-weights inherited: needs --supernet");
}

families::ChildNet ZeroCostEstimator::child(const spec::Arch& arch) {
  if (o_.weights == "inherited") return supernet_->slice(arch);
  // The initial weights lower-fidelity training would start from (train::train_arch_curve).
  torch::manual_seed(mix_seed(o_.seed, fnv1a64(spec::arch_hash(arch))));
  supernet::Supernet fresh(space_, in_channels_, num_classes_);
  fresh->set_active(arch);
  return fresh->slice(arch);
}

double ZeroCostEstimator::proxy(const spec::Arch& arch) {
  families::ChildNet net = child(arch);
  torch::Tensor x = supernet::resize_input(batch_.x, arch.resolution);
  return zero_cost_proxy(o_.proxy, net, x, batch_.y);
}

Score ZeroCostEstimator::score(const spec::Arch& arch) {
  Score s;
  try {
    s.acc = proxy(arch);
  } catch (const Interrupted&) {
    throw;
  } catch (const Error& e) {  // undefined for this child: its evaluation fails, the search goes on
    s.error = e.what();
    return s;
  }
  s.detail = o_.proxy + " on " + o_.weights + " weights";
  if (!std::isfinite(s.acc)) {  // e.g. nwot's K singular: two images with the same codes
    s.error = o_.proxy + ": not finite for this child (" + std::to_string(s.acc) + ")";
    s.acc = 0;  // JSON has no infinity; the candidate is a failed evaluation
  }
  return s;
}

}  // namespace nas::search
