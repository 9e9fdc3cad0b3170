#pragma once
// The layer arithmetic that the modules (nn/) and the analytic cost (families/family.h) share, so
// that both compute the same shapes. Torch-free.
#include "spec/search_space.h"

namespace nas::nn {

// Output size of a convolution with padding kernel/2 (odd kernels).
inline int conv_out(int in, int stride) { return (in - 1) / stride + 1; }
// Channels of the squeeze-excite bottleneck for `mid` channels (monotone, so prefix slices work).
inline int se_channels(int mid) { return (mid + 3) / 4; }
// Whether a stage's blocks have a 1x1 expansion conv (only when some expand ratio exceeds 1).
inline bool stage_has_expand(const spec::StageSpec& st) { return spec::max_of(st.expand) > 1; }

}  // namespace nas::nn
