#include "supernet/cost.h"

#include <algorithm>

namespace nas::supernet {

bool stage_has_expand(const spec::StageSpec& st) { return spec::max_of(st.expand) > 1; }

Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) {
  // Live activations follow nn::ChildNet's eager forward (one statement per layer, see child.cpp):
  // the network input is held by the caller throughout, a block's input by ChildNet until the block
  // returns, and each conv / BN / activation has its input and its output alive at once.
  Cost c;
  auto bn = [&](int64_t ch) { c.params += 2 * ch; };
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  const int64_t X = int64_t{in_channels} * a.resolution * a.resolution;
  if (a.is_mlp()) {
    // The flattened input is a view of X; each layer: bias-free Linear, BN, activation.
    int64_t in = X;
    for (size_t i = 0; i < a.layers.size(); ++i) {
      const int64_t w = a.layers[i].width;
      live(X + (i == 0 ? 0 : in) + w);
      // BN's inference kernel makes a per-channel scale and shift: at batch 1 as large as the
      // layer (on feature maps they are negligible). Then the activation: input and output.
      live(X + 4 * w);
      c.macs += in * w;
      c.params += in * w;
      bn(w);
      in = w;
    }
    live(X + in + num_classes);
    c.macs += in * num_classes;
    c.params += in * num_classes + num_classes;
    return c;
  }
  int64_t res = conv_out(a.resolution, s.stem_stride);
  int64_t k = s.stem_kernel;
  const int64_t S = res * res * a.stem_width;
  live(X + 2 * S);  // the stem's output and its channels-last copy; then BN, activation
  c.macs += res * res * a.stem_width * in_channels * k * k;
  c.params += int64_t{a.stem_width} * in_channels * k * k;
  bn(a.stem_width);
  int64_t ch = a.stem_width;
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const auto& ss = s.stages[i];
    const auto& sa = a.stages[i];
    for (int b = 0; b < sa.depth; ++b) {
      const auto& blk = sa.blocks[b];
      int stride = b == 0 ? ss.stride : 1;
      const bool expands = stage_has_expand(ss);
      int64_t mid = expands ? ch * blk.expand : ch;
      int64_t out_res = conv_out(static_cast<int>(res), stride);
      const int64_t x = res * res * ch;  // the block's input, held throughout
      const int64_t e = res * res * mid, d = out_res * out_res * mid, p = out_res * out_res * sa.width;
      const int64_t held = X + x;
      if (expands) live(held + 2 * e);  // expand conv output, then BN and activation
      live(held + (expands ? e : 0) + d);  // the depthwise conv's input and output
      live(held + 2 * d);                  // BN, activation, squeeze-excite's product
      live(held + d + p);                  // projection
      live(held + 2 * p);                  // BN, residual sum
      if (expands) {
        c.macs += res * res * ch * mid;
        c.params += ch * mid;
        bn(mid);
      }
      int64_t kk = int64_t{blk.kernel} * blk.kernel;
      c.macs += out_res * out_res * mid * kk;
      c.params += mid * kk;
      bn(mid);
      if (ss.se) {
        int64_t red = se_channels(static_cast<int>(mid));
        c.macs += 2 * mid * red;
        c.params += mid * red + red + red * mid + mid;
      }
      c.macs += out_res * out_res * mid * sa.width;
      c.params += mid * sa.width;
      bn(sa.width);
      ch = sa.width;
      res = out_res;
    }
  }
  const int64_t H = res * res * a.head_width;
  live(X + res * res * ch + H);  // head conv
  live(X + 2 * H);               // BN, activation
  c.macs += res * res * ch * a.head_width;
  c.params += ch * a.head_width;
  bn(a.head_width);
  c.macs += int64_t{a.head_width} * num_classes;
  c.params += int64_t{a.head_width} * num_classes + num_classes;
  return c;
}

}  // namespace nas::supernet
