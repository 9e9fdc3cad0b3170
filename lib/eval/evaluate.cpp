#include "eval/evaluate.h"

#include "core/error.h"
#include "core/log.h"
#include "nn/elastic.h"
#include "nn/precision.h"

namespace nas::eval {
namespace {
// Restores a module's train/eval mode (and leaves BN calibration) however the scope is left.
struct ModeGuard {
  torch::nn::Module& m;
  bool was_training;
  bool calibrating = false;
  explicit ModeGuard(torch::nn::Module& mod) : m(mod), was_training(mod.is_training()) {}
  ~ModeGuard() {
    if (calibrating) nn::set_bn_calibration(m, false);
    m.train(was_training);
  }
};
void check_interrupt(const char* what) {
  if (interrupt_requested()) throw Interrupted(std::string("interrupted during ") + what);
}
}  // namespace

EvalResult evaluate(torch::nn::Module& m, const ForwardFn& fwd, const data::ImageSet& set,
                    const std::vector<int64_t>& idx, int resolution, const data::Normalization& norm, int batch,
                    const torch::Device& device) {
  ModeGuard mode(m);
  m.eval();
  torch::NoGradGuard no_grad;
  data::LoaderOptions o;
  o.batch_size = batch;
  o.norm = norm;
  o.prefetch = 2;
  o.pin_memory = device.is_cuda();
  data::BatchLoader loader(set, idx, o);
  EvalResult r;
  double loss_sum = 0, y_sum = 0, y_sq = 0;
  int64_t correct = 0;
  bool regression = false;
  while (auto b = loader.next()) {
    check_interrupt("evaluation");
    torch::Tensor x = supernet::resize_input(b->x.to(device, /*non_blocking=*/true), resolution);
    torch::Tensor y = b->y.to(device, /*non_blocking=*/true);
    torch::Tensor logits;
    {
      nn::AutocastScope autocast(device.is_cuda());
      logits = fwd(x).to(torch::kFloat);
    }
    if (y.is_floating_point()) {  // regression: squared errors, and the targets' sums for R^2
      loss_sum += (logits.squeeze(1) - y).pow(2).sum().item<double>();
      y_sum += y.sum().item<double>();
      y_sq += y.pow(2).sum().item<double>();
      regression = true;
    } else {
      loss_sum += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
    }
    r.n += y.size(0);
  }
  if (r.n > 0) {
    r.loss = loss_sum / r.n;
    const double sst = y_sq - y_sum * y_sum / static_cast<double>(r.n);
    r.acc = !regression ? static_cast<double>(correct) / r.n : sst > 0 ? 1.0 - loss_sum / sst : 0.0;
  }
  return r;
}

void recalibrate_bn(supernet::Supernet& net, const data::ImageSet& set, const std::vector<int64_t>& idx,
                    const data::Normalization& norm, int batch, const torch::Device& device) {
  ModeGuard mode(*net);
  net->train();
  torch::NoGradGuard no_grad;
  nn::set_bn_calibration(*net, true);
  mode.calibrating = true;
  data::LoaderOptions o;
  o.batch_size = batch;
  o.norm = norm;
  o.prefetch = 2;
  o.pin_memory = device.is_cuda();
  data::BatchLoader loader(set, idx, o);
  int r = net->active().resolution;
  while (auto b = loader.next()) {
    check_interrupt("BN recalibration");
    net->forward(supernet::resize_input(b->x.to(device, /*non_blocking=*/true), r));
  }
}

EvalResult evaluate_supernet(supernet::Supernet& net, const data::ImageSet& set, const std::vector<int64_t>& idx,
                             const data::Normalization& norm, int batch, const torch::Device& device) {
  return evaluate(*net, [&](const torch::Tensor& x) { return net->forward(x); }, set, idx, net->active().resolution,
                  norm, batch, device);
}

}  // namespace nas::eval
