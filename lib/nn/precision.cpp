#include "nn/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "core/error.h"

// LibTorch 2.4 replaced the per-backend autocast setters with ones that take a device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define NAS_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define NAS_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace nas::nn {
namespace {
Precision g_precision = Precision::kFP32;

bool autocast_enabled(bool cuda) {
#if NAS_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}
at::ScalarType autocast_dtype(bool cuda) {
#if NAS_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}
void set_autocast(bool cuda, bool enabled, at::ScalarType dtype) {
#if NAS_AUTOCAST_BY_DEVICE_TYPE
  at::DeviceType dt = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(dt, enabled);
  at::autocast::set_autocast_dtype(dt, dtype);
#else
  if (cuda) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}
}  // namespace

Precision parse_precision(const std::string& name, const std::string& what) {
  if (name == "fp32") return Precision::kFP32;
  if (name == "bf16") return Precision::kBF16;
  throw UsageError(what + ": expected fp32 or bf16, found \"" + name + "\"");
}

std::string precision_name(Precision p) { return p == Precision::kBF16 ? "bf16" : "fp32"; }

void set_default_precision(Precision p) { g_precision = p; }
Precision default_precision() { return g_precision; }

AutocastScope::AutocastScope(bool cuda, Precision p) : cuda_(cuda) {
  if (p != Precision::kBF16) return;
  active_ = true;
  prev_enabled_ = autocast_enabled(cuda);
  prev_dtype_ = static_cast<int>(autocast_dtype(cuda));
  set_autocast(cuda, true, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, prev_enabled_, static_cast<at::ScalarType>(prev_dtype_));
}

}  // namespace nas::nn
