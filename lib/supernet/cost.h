#pragma once
// Analytic cost of a child: multiply-adds of convolutions and linear layers (as usually counted:
// no BN, activations or pooling) and parameter counts (BN affine parameters included, running
// statistics not). Torch-free; agrees with the modules in nn/ by construction and by test.
#include <cstdint>
#include <string>

#include "nn/shapes.h"
#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::supernet {

struct Cost {
  int64_t macs = 0;
  int64_t params = 0;
  // Activation values alive at the worst point of a batch-1 inference of nn::ChildNet, layer by
  // layer: the network's input, the current block's input, and a layer's input and output.
  int64_t peak_activations = 0;
  double mflops() const { return static_cast<double>(macs) / 1e6; }
  // Weights plus peak activations at batch 1, fp32, in MiB (what inference needs at least).
  double memory_mib() const { return static_cast<double>(params + peak_activations) * 4.0 / (1024.0 * 1024.0); }
};

// The modules' layer arithmetic (nn/shapes.h), which the cost follows.
using nn::conv_out;
using nn::se_channels;
using nn::stage_has_expand;

Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes);

// One edge op of a cell (family cell) reading c_in channels at res x res and writing c_out channels
// at conv_out(res, stride), as nn/cell.cpp builds it: MACs and parameters; peak_activations holds
// the largest pair of consecutive tensors inside the op (its transient memory).
Cost cell_op_cost(const std::string& op, int64_t c_in, int64_t c_out, int stride, int64_t res);

}  // namespace nas::supernet
