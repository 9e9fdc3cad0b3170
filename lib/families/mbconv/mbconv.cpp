#include "families/mbconv/mbconv.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "nn/shapes.h"

namespace nas::families::mbconv {
namespace {

enum class What { resolution, stem, head, depth, width, expand, kernel };
struct Slot {
  What what;
  int stage;  // -1: a global decision
  int block;  // -1: a stage-level decision
};
// The choice decision s sets in a (an int& or a const int&).
template <typename A>
auto& field(A& a, const Slot& s) {
  switch (s.what) {
    case What::resolution: return a.resolution;
    case What::stem: return a.stem_width;
    case What::head: return a.head_width;
    default: break;
  }
  auto& st = a.stages[static_cast<size_t>(s.stage)];
  if (s.what == What::depth) return st.depth;
  if (s.what == What::width) return st.width;
  auto& b = st.blocks[static_cast<size_t>(s.block)];
  return s.what == What::expand ? b.expand : b.kernel;
}

// Decisions: resolution, stem width, per stage its depth and width and, for each block slot up to
// the largest depth, expand ratio and kernel size; head width.
class MbconvEncoding : public FamilyEncoding {
 public:
  explicit MbconvEncoding(const spec::SearchSpace& s) : space_(s) {
    add(What::resolution, -1, -1, "resolution", s.resolution, "resolution");
    add(What::stem, -1, -1, "stem_width", s.stem_width, "width");
    for (size_t i = 0; i < s.stages.size(); ++i) {
      const auto& st = s.stages[i];
      const std::string p = "stage" + std::to_string(i) + ".";
      const int stage = static_cast<int>(i);
      depth_index_.push_back(decisions_.size());
      add(What::depth, stage, -1, p + "depth", st.depth, "depth");
      add(What::width, stage, -1, p + "width", st.width, "width");
      for (int b = 0; b < spec::max_of(st.depth); ++b) {
        const std::string q = p + "block" + std::to_string(b) + ".";
        add(What::expand, stage, b, q + "expand", st.expand, "expand");
        add(What::kernel, stage, b, q + "kernel", st.kernel, "kernel");
      }
    }
    add(What::head, -1, -1, "head_width", s.head_width, "width");
  }

  bool active(const Genotype& g, size_t i) const override {
    const Slot& s = slots_[i];
    return s.block < 0 || s.block < value(g, depth_index_[static_cast<size_t>(s.stage)]);
  }

  spec::Arch decode(const Genotype& g) const override {
    spec::Arch a;
    a.space = space_.name;
    a.stages.resize(space_.stages.size());
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      const int v = value(g, i);
      spec::StageArch* st = s.stage < 0 ? nullptr : &a.stages[static_cast<size_t>(s.stage)];
      if (s.block >= 0) {
        if (s.block >= st->depth) continue;  // depth precedes the block slots
        if (static_cast<int>(st->blocks.size()) <= s.block) st->blocks.resize(static_cast<size_t>(s.block) + 1);
      }
      field(a, s) = v;
    }
    return a;
  }

  Genotype encode(const spec::Arch& a) const override {
    Genotype g(decisions_.size(), 0);
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.block >= 0 && s.block >= a.stages[static_cast<size_t>(s.stage)].depth) continue;  // inactive: option 0
      g[i] = option_of(i, field(a, s));
    }
    return g;
  }

 private:
  void add(What w, int stage, int block, const std::string& name, const std::vector<int>& sizes,
           const std::string& group) {
    add_sizes(name, sizes, group);
    slots_.push_back({w, stage, block});
  }
  spec::SearchSpace space_;
  std::vector<Slot> slots_;
  std::vector<size_t> depth_index_;  // per stage, the index of its depth decision
};

class MbconvFamily : public Family {
 public:
  std::string name() const override { return "mbconv"; }
  bool holds(const spec::Arch& a) const override { return !a.stages.empty(); }
  std::string choices_key() const override { return "stages"; }
  std::string choices_description() const override {
    return "stem_width, stages and head_width (the choices of an mbconv child)";
  }

  void validate(const spec::Arch& a, const spec::SearchSpace& s, const std::string& file) const override {
    check_choice(file, "stem_width", a.stem_width, s.stem_width);
    check_choice(file, "head_width", a.head_width, s.head_width);
    NAS_CHECK(a.stages.size() == s.stages.size(), SpecError,
              file << ": stages: expected " << s.stages.size() << " stages, found " << a.stages.size());
    for (size_t i = 0; i < a.stages.size(); ++i) {
      const std::string p = "stages[" + std::to_string(i) + "]";
      const auto& st = a.stages[i];
      const auto& ss = s.stages[i];
      check_choice(file, p + ".depth", st.depth, ss.depth);
      check_choice(file, p + ".width", st.width, ss.width);
      NAS_CHECK(st.blocks.size() == static_cast<size_t>(st.depth), SpecError,
                file << ": " << p << ".blocks: expected " << st.depth << " blocks, found " << st.blocks.size());
      for (size_t b = 0; b < st.blocks.size(); ++b) {
        const std::string bp = p + ".blocks[" + std::to_string(b) + "]";
        check_choice(file, bp + ".expand", st.blocks[b].expand, ss.expand);
        check_choice(file, bp + ".kernel", st.blocks[b].kernel, ss.kernel);
      }
    }
  }

  std::string summary(const spec::Arch& a) const override {
    std::ostringstream os;
    os << "s" << a.stem_width;
    for (const auto& st : a.stages) {
      os << " [w" << st.width << " ";
      for (size_t b = 0; b < st.blocks.size(); ++b)
        os << (b ? "," : "") << "e" << st.blocks[b].expand << "k" << st.blocks[b].kernel;
      os << "]";
    }
    os << " h" << a.head_width;
    return os.str();
  }

  void at_levels(const spec::SearchSpace& s, const Levels& l, spec::Arch& a) const override {
    a.stem_width = at_level(s.stem_width, l.width);
    a.head_width = at_level(s.head_width, l.width);
    for (const auto& st : s.stages) {
      spec::StageArch sa;
      sa.depth = at_level(st.depth, l.depth);
      sa.width = at_level(st.width, l.width);
      sa.blocks.assign(sa.depth, spec::BlockArch{at_level(st.expand, l.expand), at_level(st.kernel, l.kernel)});
      a.stages.push_back(sa);
    }
  }

  void draw(const spec::SearchSpace& s, Rng&, const Pick& pick, bool, spec::Arch& a) const override {
    auto choose = [&](const std::vector<int>& set) { return set[pick(set.size())]; };
    a.stem_width = choose(s.stem_width);
    for (const auto& st : s.stages) {
      spec::StageArch sa;
      sa.depth = choose(st.depth);
      sa.width = choose(st.width);
      for (int b = 0; b < sa.depth; ++b) {
        const int e = choose(st.expand);
        const int k = choose(st.kernel);
        sa.blocks.push_back({e, k});
      }
      a.stages.push_back(sa);
    }
    a.head_width = choose(s.head_width);
  }

  bool mutate(const spec::SearchSpace& s, Rng& rng, double prob, spec::Arch& a) const override {
    auto maybe = [&](const std::vector<int>& set, int& v) {
      if (rng.uniform() < prob) v = neighbour(set, v, rng);
    };
    maybe(s.stem_width, a.stem_width);
    maybe(s.head_width, a.head_width);
    for (size_t i = 0; i < a.stages.size(); ++i) {
      const auto& st = s.stages[i];
      auto& sa = a.stages[i];
      maybe(st.width, sa.width);
      int d = sa.depth;
      maybe(st.depth, d);
      // New blocks copy the last block's choices; removed blocks drop off the end.
      while (static_cast<int>(sa.blocks.size()) < d) sa.blocks.push_back(sa.blocks.back());
      sa.blocks.resize(static_cast<size_t>(d));
      sa.depth = d;
      for (auto& b : sa.blocks) {
        maybe(st.expand, b.expand);
        maybe(st.kernel, b.kernel);
      }
    }
    return true;
  }

  Cost cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const override;

  std::unique_ptr<FamilyEncoding> encoding(const spec::SearchSpace& s) const override {
    return std::make_unique<MbconvEncoding>(s);
  }
};

// Live activations follow nn::ChildNet's eager forward (one statement per layer, see child.cpp):
// the network input is held by the caller throughout, a block's input by ChildNet until the block
// returns, and each conv / BN / activation has its input and its output alive at once.
Cost MbconvFamily::cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const {
  Cost c;
  auto bn = [&](int64_t ch) { c.params += 2 * ch; };
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  const int64_t X = int64_t{in_channels} * a.resolution * a.resolution;
  int64_t res = nn::conv_out(a.resolution, s.stem_stride);
  const int64_t k = s.stem_kernel;
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
      const int stride = b == 0 ? ss.stride : 1;
      const bool expands = nn::stage_has_expand(ss);
      const int64_t mid = expands ? ch * blk.expand : ch;
      const int64_t out_res = nn::conv_out(static_cast<int>(res), stride);
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
      const int64_t kk = int64_t{blk.kernel} * blk.kernel;
      c.macs += out_res * out_res * mid * kk;
      c.params += mid * kk;
      bn(mid);
      if (ss.se) {
        const int64_t red = nn::se_channels(static_cast<int>(mid));
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

}  // namespace

const Family& family() {
  static const MbconvFamily f;
  return f;
}

}  // namespace nas::families::mbconv
