#pragma once
// Mixed precision: `--precision bf16` runs forward passes under LibTorch's autocast to bfloat16
// (convolutions and matmuls in bf16, reductions and losses in fp32; no loss scaling is needed for
// bf16). Backward passes run outside the scope, as autocast requires. Torch-free header.
#include <string>

namespace nas::nn {

enum class Precision { kFP32, kBF16 };

// "fp32" or "bf16"; anything else throws UsageError naming `what`.
Precision parse_precision(const std::string& name, const std::string& what = "--precision");
std::string precision_name(Precision p);

// The process-wide precision the tools run at (set once from --precision).
void set_default_precision(Precision p);
Precision default_precision();

// While alive, autocasts to bf16 on the CPU or CUDA (whichever `cuda` says) when the precision is
// bf16; does nothing at fp32. Restores the previous autocast state when it ends, and clears the
// cast-weight cache when the outermost scope ends.
class AutocastScope {
 public:
  explicit AutocastScope(bool cuda, Precision p = default_precision());
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool prev_enabled_ = false;
  int prev_dtype_ = 0;
};

}  // namespace nas::nn
