#pragma once
// Test helpers that need LibTorch and a supernet.
#include <string>
#include <vector>

#include "families/modules.h"
#include "supernet/supernet.h"

namespace nas::test {

// Random BN statistics and affine parameters, so that "same BN statistics" is a real check.
void randomize_bn(supernet::Supernet& net);

// The number of values in m's parameters (what an analytic parameter count must equal).
int64_t numel_of(torch::nn::Module& m);

// Runs `model`, the ONNX file of `net` (in eval mode), in ONNX Runtime (its node modules at
// `modules`, test::ort_node_modules) on 3 random images of `resolution`, and checks that its
// output is allclose to LibTorch's (atol 1e-4). `dir` holds the exchanged tensors.
void check_onnx_runtime_agrees(families::ChildNet& net, int resolution, const std::string& model,
                               const std::string& modules, const std::string& dir);

// For each child of `s` in `archs`: the measured peak of a batch-1 inference (after a first one)
// agrees with the analytic peak activations of families::arch_cost, between 0.8x and 1.5x.
void check_peak_activations(const spec::SearchSpace& s, const std::vector<spec::Arch>& archs);

}  // namespace nas::test
