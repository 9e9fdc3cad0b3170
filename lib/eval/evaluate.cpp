#include "eval/evaluate.h"

namespace nas::eval {

EvalResult evaluate(torch::nn::Module& m, const ForwardFn& fwd, const data::ImageSet& set,
                    const std::vector<int64_t>& idx, int resolution, const data::Normalization& norm, int batch,
                    const torch::Device& device) {
  bool was_training = m.is_training();
  m.eval();
  torch::NoGradGuard no_grad;
  data::LoaderOptions o;
  o.batch_size = batch;
  o.norm = norm;
  o.prefetch = 2;
  data::BatchLoader loader(set, idx, o);
  EvalResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  while (auto b = loader.next()) {
    torch::Tensor x = supernet::resize_input(b->x.to(device), resolution);
    torch::Tensor y = b->y.to(device);
    torch::Tensor logits = fwd(x);
    loss_sum += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
    r.n += y.size(0);
  }
  m.train(was_training);
  if (r.n > 0) {
    r.acc = static_cast<double>(correct) / r.n;
    r.loss = loss_sum / r.n;
  }
  return r;
}

void recalibrate_bn(supernet::Supernet& net, const data::ImageSet& set, const std::vector<int64_t>& idx,
                    const data::Normalization& norm, int batch, const torch::Device& device) {
  bool was_training = net->is_training();
  net->train();
  torch::NoGradGuard no_grad;
  nn::set_bn_calibration(*net, true);
  data::LoaderOptions o;
  o.batch_size = batch;
  o.norm = norm;
  o.prefetch = 2;
  data::BatchLoader loader(set, idx, o);
  int r = net->active().resolution;
  net->set_dropout(0.0);
  try {
    while (auto b = loader.next()) net->forward(supernet::resize_input(b->x.to(device), r));
  } catch (...) {
    nn::set_bn_calibration(*net, false);
    throw;
  }
  nn::set_bn_calibration(*net, false);
  net->train(was_training);
}

EvalResult evaluate_supernet(supernet::Supernet& net, const data::ImageSet& set, const std::vector<int64_t>& idx,
                             const data::Normalization& norm, int batch, const torch::Device& device) {
  return evaluate(*net, [&](const torch::Tensor& x) { return net->forward(x); }, set, idx, net->active().resolution,
                  norm, batch, device);
}

}  // namespace nas::eval
