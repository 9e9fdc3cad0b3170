#pragma once
// The layer arithmetic that the modules and the analytic cost (families/) share, so that both
// compute the same shapes. Torch-free.
#include <vector>

#include "spec/search_space.h"

namespace nas::nn {

// Output size of a convolution with padding kernel/2 (odd kernels).
inline int conv_out(int in, int stride) { return (in - 1) / stride + 1; }
// Channels of the squeeze-excite bottleneck for `mid` channels (monotone, so prefix slices work).
inline int se_channels(int mid) { return (mid + 3) / 4; }
// Whether an inverted-residual stage's blocks have a 1x1 expansion conv, given its expand-ratio
// choices (only when some ratio exceeds 1).
inline bool has_expand(const std::vector<int>& expand_choices) { return spec::max_of(expand_choices) > 1; }

}  // namespace nas::nn
