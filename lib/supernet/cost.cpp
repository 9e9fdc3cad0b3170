#include "supernet/cost.h"

#include <algorithm>

namespace nas::supernet {

Cost cell_op_cost(const std::string& op, int64_t c_in, int64_t c_out, int stride, int64_t res) {
  Cost c;
  const int64_t out = conv_out(static_cast<int>(res), stride);
  const int64_t in_px = res * res, out_px = out * out;
  auto pair = [&](int64_t a, int64_t b) { c.peak_activations = std::max(c.peak_activations, a + b); };
  auto conv = [&](int64_t ci, int64_t co, int64_t k, int64_t groups, int64_t px) {
    c.macs += px * co * (ci / groups) * k * k;
    c.params += co * (ci / groups) * k * k;
  };
  auto kernel = [&](const std::string& name) { return static_cast<int64_t>(name.back() - '0'); };  // ..._3x3
  pair(c_in * in_px, c_in * in_px);  // the ReLU (or pooling's) input and output
  if (op == "none") return Cost{};
  if (op.rfind("nor_conv_", 0) == 0) {
    conv(c_in, c_out, kernel(op), 1, out_px);
    c.params += 2 * c_out;
    pair(c_in * in_px, c_out * out_px);
  } else if (op.rfind("sep_conv_", 0) == 0) {
    const int64_t k = kernel(op);
    conv(c_in, c_in, k, c_in, out_px);
    conv(c_in, c_in, 1, 1, out_px);
    conv(c_in, c_in, k, c_in, out_px);
    conv(c_in, c_out, 1, 1, out_px);
    c.params += 2 * c_in + 2 * c_out;
    pair(c_in * in_px, c_in * out_px);
    pair(c_in * out_px, c_out * out_px);
  } else if (op.rfind("dil_conv_", 0) == 0) {
    conv(c_in, c_in, kernel(op), c_in, out_px);
    conv(c_in, c_out, 1, 1, out_px);
    c.params += 2 * c_out;
    pair(c_in * in_px, c_in * out_px);
    pair(c_in * out_px, c_out * out_px);
  } else if (op == "avg_pool_3x3" || op == "max_pool_3x3") {
    if (c_in != c_out) {  // ReLU, 1x1 conv, BN to c_out first
      conv(c_in, c_out, 1, 1, in_px);
      c.params += 2 * c_out;
      pair(c_in * in_px, c_out * in_px);
      pair(c_out * in_px, c_out * in_px);  // the conv's output and BN's
    }
    pair(c_out * in_px, c_out * out_px);
  } else if (op == "skip_connect") {
    if (stride == 1 && c_in == c_out) return Cost{};  // the identity: no new tensor
    // stride 1: ReLU, 1x1 conv, BN; stride 2: factorized reduce (two half-width 1x1 convs of stride
    // 2, one on the input shifted by a pixel, concatenated, then BN).
    conv(c_in, c_out, 1, 1, out_px);
    c.params += 2 * c_out;
    pair(c_in * in_px, c_out * out_px);
    // Factorized reduce: the ReLU'd input, its padded copy, both halves, their concatenation and BN's
    // output are alive together at the end.
    if (stride != 1) pair(c_in * in_px + c_in * (res + 1) * (res + 1), 3 * c_out * out_px);
  }
  return c;
}

namespace {
Cost cell_net_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) {
  // nn::CellNet's eager forward: the network input is held throughout; a cell holds its input node
  // and every node it has computed; a node being summed holds its partial sum, an op's input (after
  // ReLU) and output.
  Cost c;
  const int64_t X = int64_t{in_channels} * a.resolution * a.resolution;
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  int64_t res = a.resolution, ch = s.cell_width;
  c.macs += res * res * ch * in_channels * 9;
  c.params += ch * in_channels * 9 + 2 * ch;
  live(X + 2 * res * res * ch);
  auto cell = [&](const std::vector<std::string>& ops, int64_t c_in, int64_t c_out, int stride) {
    const int64_t out = conv_out(static_cast<int>(res), stride);
    const int64_t node0 = c_in * res * res, node = c_out * out * out;
    for (const auto& n : spec::cell_nodes(s.nodes)) {
      const int64_t held = X + node0 + (n.to - 1) * node;
      for (const auto& edge : n.inputs) {
        const size_t e = edge.index;
        Cost op = edge.from == 0 ? cell_op_cost(ops[e], c_in, c_out, stride, res)
                                 : cell_op_cost(ops[e], c_out, c_out, 1, out);
        c.macs += op.macs;
        c.params += op.params;
        if (ops[e] != "none") live(held + node + op.peak_activations);
      }
      live(held + 2 * node);  // the node itself (a zero tensor when every edge into it is none)
    }
    res = out;
    return c_out;
  };
  for (size_t st = 0; st < s.cells.size(); ++st) {
    if (st > 0) ch = cell(a.reduce, ch, 2 * ch, 2);
    for (int k = 0; k < s.cells[st]; ++k) cell(a.normal, ch, ch, 1);
  }
  live(X + 2 * res * res * ch);  // head BN, ReLU
  c.params += 2 * ch;
  c.macs += ch * num_classes;
  c.params += ch * num_classes + num_classes;
  return c;
}
}  // namespace

Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) {
  if (a.is_cell()) return cell_net_cost(s, a, in_channels, num_classes);
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
