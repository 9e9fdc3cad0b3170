#pragma once
// Accuracy and loss of a model on a set of images, and BN recalibration of a supernet child.
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "data/idx.h"
#include "data/loader.h"
#include "supernet/supernet.h"

namespace nas::eval {

struct EvalResult {
  double acc = 0;   // top-1 in [0, 1]; for regression R^2 (1 - SSE/SST, at most 1)
  double loss = 0;  // mean cross-entropy; for regression mean squared error (standardized target)
  int64_t n = 0;
};

using ForwardFn = std::function<torch::Tensor(const torch::Tensor&)>;

// The evaluation batch size for a device: 64 on CPU (measured: scoring 10,000 images of a
// median-size child took 2.2 s at 32-64, 7.0 s at 256 and 8.5 s at 500 on 2 cores, activations
// of large batches leave the caches), 512 on CUDA.
inline int default_eval_batch(const torch::Device& device) { return device.is_cuda() ? 512 : 64; }

// Runs `fwd` in eval mode (module `m` switched to eval and back) on the images `idx`, resized to
// `resolution`, and counts correct top-1 predictions.
EvalResult evaluate(torch::nn::Module& m, const ForwardFn& fwd, const data::ImageSet& set,
                    const std::vector<int64_t>& idx, int resolution, const data::Normalization& norm, int batch,
                    const torch::Device& device = torch::kCPU);

// Recalibrates the running BN statistics of the supernet's active child: forwards the images `idx`
// (at the active resolution) in train mode without gradients, with cumulative averaging.
void recalibrate_bn(supernet::Supernet& net, const data::ImageSet& set, const std::vector<int64_t>& idx,
                    const data::Normalization& norm, int batch, const torch::Device& device = torch::kCPU);

// Evaluates the supernet's active child.
EvalResult evaluate_supernet(supernet::Supernet& net, const data::ImageSet& set, const std::vector<int64_t>& idx,
                             const data::Normalization& norm, int batch, const torch::Device& device = torch::kCPU);

}  // namespace nas::eval
