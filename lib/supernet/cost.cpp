#include "supernet/cost.h"

#include <algorithm>

namespace nas::supernet {

bool stage_has_expand(const spec::StageSpec& st) { return spec::max_of(st.expand) > 1; }

Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) {
  Cost c;
  auto bn = [&](int64_t ch) { c.params += 2 * ch; };
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  int64_t res = conv_out(a.resolution, s.stem_stride);
  int64_t k = s.stem_kernel;
  live(int64_t{in_channels} * a.resolution * a.resolution + res * res * a.stem_width);
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
      int64_t mid = stage_has_expand(ss) ? ch * blk.expand : ch;
      int64_t out_res_ = conv_out(static_cast<int>(res), stride);
      const bool residual = b > 0;  // the first block of a stage changes shape: no shortcut
      int64_t x = res * res * ch;   // the block's input, kept until the addition when residual
      int64_t kept = residual ? x : 0;
      if (stage_has_expand(ss)) live(x + res * res * mid);
      live((stage_has_expand(ss) ? kept + res * res * mid : x) + out_res_ * out_res_ * mid);
      live(kept + out_res_ * out_res_ * mid + out_res_ * out_res_ * sa.width);
      if (stage_has_expand(ss)) {
        c.macs += res * res * ch * mid;
        c.params += ch * mid;
        bn(mid);
      }
      int64_t out_res = conv_out(static_cast<int>(res), stride);
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
  live(res * res * ch + res * res * a.head_width);
  c.macs += res * res * ch * a.head_width;
  c.params += ch * a.head_width;
  bn(a.head_width);
  c.macs += int64_t{a.head_width} * num_classes;
  c.params += int64_t{a.head_width} * num_classes + num_classes;
  return c;
}

}  // namespace nas::supernet
