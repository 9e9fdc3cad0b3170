// Family mbconv's latency-table operators: the stem, each inverted-residual block by its shape, the
// head (families/latency_ops.h).
#include <sstream>

#include "families/latency_ops.h"
#include "families/mbconv/mbconv.h"
#include "nn/shapes.h"

namespace nas::families::mbconv {
namespace {

// With the table's key: the kind and every field that the kind's latency depends on.
LatencyOp keyed(LatencyOp op) {
  std::ostringstream k;
  k << op.kind << "/in" << op.in << "/out" << op.out;
  if (op.kind == "block")
    k << "/e" << op.expand << (op.has_expand ? "" : "n") << "/k" << op.kernel << "/s" << op.stride
      << (op.residual ? "/res" : "") << (op.se ? "/se" : "");
  if (op.kind == "stem") k << "/k" << op.kernel << "/s" << op.stride;
  if (op.kind == "head") k << "/c" << op.classes;
  k << "/r" << op.res << "/" << op.act;
  op.key = k.str();
  return op;
}

LatencyOp stem_op(const Space& s, int res, int width, int in_channels) {
  LatencyOp op;
  op.kind = op.part = "stem";
  op.in = in_channels;
  op.out = width;
  op.kernel = s.stem_kernel;
  op.stride = s.stem_stride;
  op.res = res;
  op.act = s.stem_act;
  return keyed(op);
}

LatencyOp block_op(const StageSpec& st, size_t stage, int in, int out, int expand, int kernel, bool first, int res) {
  LatencyOp op;
  op.kind = "block";
  op.part = "stage" + std::to_string(stage);
  op.in = in;
  op.out = out;
  op.has_expand = nn::has_expand(st.expand);
  op.expand = op.has_expand ? expand : 1;
  op.kernel = kernel;
  op.stride = first ? st.stride : 1;
  op.residual = !first;
  op.se = st.se;
  op.res = res;
  op.act = st.act;
  return keyed(op);
}

LatencyOp head_op(const Space& s, int in, int width, int res, int classes) {
  LatencyOp op;
  op.kind = op.part = "head";
  op.in = in;
  op.out = width;
  op.res = res;
  op.act = s.head_act;
  op.classes = classes;
  return keyed(op);
}

class MbconvLatencyOps : public LatencyOps {
 public:
  std::vector<LatencyOp> of_child(const spec::SearchSpace& space, const spec::Arch& arch, int in_channels,
                                  int num_classes) const override {
    const Space& s = space_of(space);
    const Choices& a = choices_of(arch);
    std::vector<LatencyOp> ops;
    ops.push_back(stem_op(s, arch.resolution, a.stem_width, in_channels));
    int res = nn::conv_out(arch.resolution, s.stem_stride);
    int ch = a.stem_width;
    for (size_t i = 0; i < a.stages.size(); ++i) {
      const auto& st = s.stages[i];
      const auto& sa = a.stages[i];
      for (int b = 0; b < sa.depth; ++b) {
        ops.push_back(block_op(st, i, ch, sa.width, sa.blocks[b].expand, sa.blocks[b].kernel, b == 0, res));
        if (b == 0) res = nn::conv_out(res, st.stride);
        ch = sa.width;
      }
    }
    ops.push_back(head_op(s, ch, a.head_width, res, num_classes));
    return ops;
  }

  std::vector<LatencyOp> of_space(const spec::SearchSpace& space, int in_channels, int num_classes) const override {
    const Space& s = space_of(space);
    std::vector<LatencyOp> ops;
    for (int r0 : space.resolution) {
      for (int w : s.stem_width) ops.push_back(stem_op(s, r0, w, in_channels));
      int res = nn::conv_out(r0, s.stem_stride);
      std::vector<int> in_widths = s.stem_width;
      for (size_t i = 0; i < s.stages.size(); ++i) {
        const auto& st = s.stages[i];
        const int out_res = nn::conv_out(res, st.stride);
        for (int out : st.width)
          for (int e : st.expand)
            for (int k : st.kernel) {
              for (int in : in_widths) ops.push_back(block_op(st, i, in, out, e, k, true, res));
              if (spec::max_of(st.depth) > 1) ops.push_back(block_op(st, i, out, out, e, k, false, out_res));
            }
        in_widths = st.width;
        res = out_res;
      }
      for (int in : in_widths)
        for (int w : s.head_width) ops.push_back(head_op(s, in, w, res, num_classes));
    }
    return ops;
  }

  std::vector<std::string> parts(const spec::SearchSpace& space) const override {
    std::vector<std::string> p = {"stem", "head"};
    for (size_t i = 0; i < space_of(space).stages.size(); ++i) p.push_back("stage" + std::to_string(i));
    return p;
  }

  bool is_block(const LatencyOp& op) const override { return op.kind == "block"; }
};

}  // namespace

const LatencyOps& latency_ops() {
  static const MbconvLatencyOps ops;
  return ops;
}

}  // namespace nas::families::mbconv
