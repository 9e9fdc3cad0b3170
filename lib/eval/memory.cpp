#include "eval/memory.h"

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include <algorithm>
#include <memory>

namespace nas::eval {
namespace {
// The counters' type of MemoryReportingInfoBase::reportMemoryUsage: int64_t in LibTorch 1.13,
// size_t in 2.x. Deduced, so that one override compiles against both.
template <typename F>
struct TotalArg;
template <typename C, typename P, typename A, typename T, typename D>
struct TotalArg<void (C::*)(P, A, T, T, D)> {
  using type = T;
};
using Total = TotalArg<decltype(&c10::MemoryReportingInfoBase::reportMemoryUsage)>::type;

class PeakReporter : public c10::MemoryReportingInfoBase {
 public:
  void reportMemoryUsage(void*, int64_t alloc_size, Total, Total, c10::Device) override {
    // Frees arrive as negative sizes, and only for memory allocated while reporting was on.
    current_ += alloc_size;
    peak_ = std::max(peak_, current_);
    if (alloc_size > 0) ++allocations_;
  }
  bool memoryProfilingEnabled() const override { return true; }
  int64_t peak_ = 0, current_ = 0, allocations_ = 0;
};
}  // namespace

MemoryPeak measure_peak_memory(const std::function<void()>& fn) {
  auto reporter = std::make_shared<PeakReporter>();
  {
    c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, reporter);
    fn();
  }
  return {reporter->peak_, reporter->allocations_};
}

}  // namespace nas::eval
