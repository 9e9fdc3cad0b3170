#pragma once
// Analytic cost of a child: multiply-adds of convolutions and linear layers (as usually counted:
// no BN, activations or pooling) and parameter counts (BN affine parameters included, running
// statistics not). Torch-free; agrees with the modules in nn/ by construction and by test.
#include <cstdint>
#include <string>

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

// Output size of a convolution with padding kernel/2 (odd kernels).
inline int conv_out(int in, int stride) { return (in - 1) / stride + 1; }
// Channels of the squeeze-excite bottleneck for `mid` channels (monotone, so prefix slices work).
inline int se_channels(int mid) { return (mid + 3) / 4; }
// Whether a stage's blocks have a 1x1 expansion conv (only when some expand ratio exceeds 1).
bool stage_has_expand(const spec::StageSpec& st);

Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes);

// One edge op of a cell (family cell) reading c_in channels at res x res and writing c_out channels
// at conv_out(res, stride), as nn/cell.cpp builds it: MACs and parameters; peak_activations holds
// the largest pair of consecutive tensors inside the op (its transient memory).
Cost cell_op_cost(const std::string& op, int64_t c_in, int64_t c_out, int stride, int64_t res);

}  // namespace nas::supernet
