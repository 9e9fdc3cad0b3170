#pragma once
// Measured memory of a forward pass: the peak of tensor memory allocated while it runs, counted by
// LibTorch's own memory-reporting hook (what its profiler uses), on the calling thread, CPU and
// CUDA alike. Memory held before the call (weights, the input) is not counted.
#include <cstdint>
#include <functional>

namespace nas::eval {

struct MemoryPeak {
  int64_t peak_bytes = 0;    // the most tensor memory allocated at once during fn, beyond what was held before
  int64_t allocations = 0;   // tensors allocated during fn
};

MemoryPeak measure_peak_memory(const std::function<void()>& fn);

}  // namespace nas::eval
