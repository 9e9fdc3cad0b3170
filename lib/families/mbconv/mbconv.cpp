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
template <typename A, typename C>
auto& field(A& a, C& c, const Slot& s) {
  if (s.what == What::resolution) return a.resolution;
  if (s.what == What::stem) return c.stem_width;
  if (s.what == What::head) return c.head_width;
  auto& st = c.stages[static_cast<size_t>(s.stage)];
  if (s.what == What::depth) return st.depth;
  if (s.what == What::width) return st.width;
  auto& b = st.blocks[static_cast<size_t>(s.block)];
  return s.what == What::expand ? b.expand : b.kernel;
}

// Decisions: resolution, stem width, per stage its depth and width and, for each block slot up to
// the largest depth, expand ratio and kernel size; head width.
class MbconvEncoding : public FamilyEncoding {
 public:
  explicit MbconvEncoding(const spec::SearchSpace& space)
      : space_name_(space.name), stages_(space_of(space).stages.size()) {
    const Space& s = space_of(space);
    add(What::resolution, -1, -1, "resolution", space.resolution, "resolution");
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
    a.space = space_name_;
    auto c = std::make_shared<Choices>();
    c->stages.resize(stages_);
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.block >= 0) {
        StageArch& st = c->stages[static_cast<size_t>(s.stage)];
        if (s.block >= st.depth) continue;  // depth precedes the block slots
        if (static_cast<int>(st.blocks.size()) <= s.block) st.blocks.resize(static_cast<size_t>(s.block) + 1);
      }
      field(a, *c, s) = value(g, i);
    }
    a.choices = c;
    return a;
  }

  Genotype encode(const spec::Arch& a) const override {
    const Choices& c = choices_of(a);
    Genotype g(decisions_.size(), 0);
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.block >= 0 && s.block >= c.stages[static_cast<size_t>(s.stage)].depth) continue;  // inactive: option 0
      g[i] = option_of(i, field(a, c, s));
    }
    return g;
  }

 private:
  void add(What w, int stage, int block, const std::string& name, const std::vector<int>& sizes,
           const std::string& group) {
    add_sizes(name, sizes, group);
    slots_.push_back({w, stage, block});
  }
  std::string space_name_;
  size_t stages_;
  std::vector<Slot> slots_;
  std::vector<size_t> depth_index_;  // per stage, the index of its depth decision
};

std::vector<int> odd_set(spec::Obj& o, const std::string& key, int lo, int hi) {
  auto v = sorted_set(o, key, lo, hi);
  for (int k : v)
    if (k % 2 == 0) o.fail(key, "odd kernel sizes", spec::json(v));
  return v;
}

StageSpec stage_from(spec::Obj& so) {
  StageSpec st;
  st.depth = sorted_set(so, "depth", 1, kMaxDepth);
  st.width = sorted_set(so, "width", 1, kMaxWidth);
  st.expand = sorted_set(so, "expand", 1, 16);
  st.kernel = odd_set(so, "kernel", 1, 11);
  st.stride = static_cast<int>(so.integer_or("stride", 1, 1, 4));
  st.se = so.boolean_or("se", false);
  st.act = so.one_of_or("act", spec::activation_names(), "relu");
  so.finish();
  return st;
}

std::shared_ptr<Space> space_from(spec::Obj& o) {
  auto s = std::make_shared<Space>();
  {
    spec::Obj st = o.object("stem");
    s->stem_width = sorted_set(st, "width", 1, kMaxWidth);
    s->stem_kernel = static_cast<int>(st.integer_or("kernel", 3, 1, 11));
    if (s->stem_kernel % 2 == 0) st.fail("kernel", "an odd kernel size", s->stem_kernel);
    s->stem_stride = static_cast<int>(st.integer_or("stride", 1, 1, 4));
    s->stem_act = st.one_of_or("act", spec::activation_names(), "relu");
    st.finish();
  }
  auto stages = o.objects("stages");
  if (stages.empty() || stages.size() > static_cast<size_t>(kMaxStages))
    o.fail("stages", "a list of 1 to " + std::to_string(kMaxStages) + " stages", o.raw("stages"));
  for (auto& so : stages) s->stages.push_back(stage_from(so));
  {
    spec::Obj h = o.object("head");
    s->head_width = sorted_set(h, "width", 1, kMaxWidth);
    s->head_act = h.one_of_or("act", spec::activation_names(), "relu");
    h.finish();
  }
  return s;
}

std::shared_ptr<Choices> choices_from(spec::Obj& o) {
  auto c = std::make_shared<Choices>();
  c->stem_width = static_cast<int>(o.integer("stem_width", 1, 1 << 16));
  c->head_width = static_cast<int>(o.integer("head_width", 1, 1 << 16));
  auto stages = o.objects("stages");
  if (stages.empty()) o.fail("stages", "a non-empty list of stages", o.raw("stages"));
  for (auto& so : stages) {
    StageArch st;
    st.depth = static_cast<int>(so.integer("depth", 1, 1024));
    st.width = static_cast<int>(so.integer("width", 1, 1 << 16));
    auto blocks = so.objects("blocks");
    if (blocks.size() != static_cast<size_t>(st.depth))
      so.fail("blocks", "a list of exactly depth=" + std::to_string(st.depth) + " blocks", so.raw("blocks"));
    for (auto& bo : blocks) {
      BlockArch b;
      b.expand = static_cast<int>(bo.integer("expand", 1, 1024));
      b.kernel = static_cast<int>(bo.integer("kernel", 1, 1024));
      bo.finish();
      st.blocks.push_back(b);
    }
    so.finish();
    c->stages.push_back(st);
  }
  o.finish();
  return c;
}

class MbconvFamily : public Family {
 public:
  std::string name() const override { return "mbconv"; }
  const LatencyOps* latency_ops() const override { return &mbconv::latency_ops(); }
  bool runs_at_any_resolution() const override { return true; }
  std::string choices_key() const override { return "stages"; }
  std::string choices_description() const override {
    return "stem_width, stages and head_width (the choices of an mbconv child)";
  }

  void read_space(spec::Obj& o, spec::SearchSpace& s) const override {
    s.resolution = sorted_set(o, "resolution", 8, kMaxResolution);
    auto space = space_from(o);
    o.finish();
    // Every stride must leave at least a 1x1 feature map at the smallest resolution.
    const int res = spec::min_of(s.resolution);
    int r = (res + space->stem_stride - 1) / space->stem_stride;
    for (const auto& st : space->stages) r = (r + st.stride - 1) / st.stride;
    NAS_CHECK(r >= 1, SpecError, o.file() << ": stages: strides leave no spatial extent at resolution " << res);
    s.choices = space;
  }

  // mbconv reads what no other family claims (so its errors name the keys a document lacks).
  bool claims(const spec::json&) const override { return false; }
  std::shared_ptr<const spec::ArchChoices> read_arch(spec::Obj& o) const override { return choices_from(o); }

  void validate(const spec::Arch& arch, const spec::SearchSpace& space, const std::string& file) const override {
    const Choices& a = choices_of(arch);
    const Space& s = space_of(space);
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

  std::string summary(const spec::Arch& arch) const override {
    const Choices& a = choices_of(arch);
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

  void at_levels(const spec::SearchSpace& space, const Levels& l, spec::Arch& a) const override {
    const Space& s = space_of(space);
    auto c = std::make_shared<Choices>();
    c->stem_width = at_level(s.stem_width, l.width);
    c->head_width = at_level(s.head_width, l.width);
    for (const auto& st : s.stages) {
      StageArch sa;
      sa.depth = at_level(st.depth, l.depth);
      sa.width = at_level(st.width, l.width);
      sa.blocks.assign(sa.depth, BlockArch{at_level(st.expand, l.expand), at_level(st.kernel, l.kernel)});
      c->stages.push_back(sa);
    }
    a.choices = c;
  }

  void draw(const spec::SearchSpace& space, Rng&, const Pick& pick, bool, spec::Arch& a) const override {
    const Space& s = space_of(space);
    auto choose = [&](const std::vector<int>& set) { return set[pick(set.size())]; };
    auto c = std::make_shared<Choices>();
    c->stem_width = choose(s.stem_width);
    for (const auto& st : s.stages) {
      StageArch sa;
      sa.depth = choose(st.depth);
      sa.width = choose(st.width);
      for (int b = 0; b < sa.depth; ++b) {
        const int e = choose(st.expand);
        const int k = choose(st.kernel);
        sa.blocks.push_back({e, k});
      }
      c->stages.push_back(sa);
    }
    c->head_width = choose(s.head_width);
    a.choices = c;
  }

  bool mutate(const spec::SearchSpace& space, Rng& rng, double prob, spec::Arch& a) const override {
    const Space& s = space_of(space);
    Choices& c = edit<Choices>(a);
    auto maybe = [&](const std::vector<int>& set, int& v) {
      if (rng.uniform() < prob) v = neighbour(set, v, rng);
    };
    maybe(s.stem_width, c.stem_width);
    maybe(s.head_width, c.head_width);
    for (size_t i = 0; i < c.stages.size(); ++i) {
      const auto& st = s.stages[i];
      auto& sa = c.stages[i];
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

// Live activations follow families::ChildNet's eager forward (one statement per layer, see modules.cpp):
// the network input is held by the caller throughout, a block's input by ChildNet until the block
// returns, and each conv / BN / activation has its input and its output alive at once.
Cost MbconvFamily::cost(const spec::SearchSpace& space, const spec::Arch& arch, int in_channels,
                        int num_classes) const {
  const Space& s = space_of(space);
  const Choices& a = choices_of(arch);
  Cost c;
  auto bn = [&](int64_t ch) { c.params += 2 * ch; };
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  const int64_t X = int64_t{in_channels} * arch.resolution * arch.resolution;
  int64_t res = nn::conv_out(arch.resolution, s.stem_stride);
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
      const bool expands = nn::has_expand(ss.expand);
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

void Space::write(spec::json& j) const {
  j["stem"] = {{"width", stem_width}, {"kernel", stem_kernel}, {"stride", stem_stride}, {"act", stem_act}};
  j["stages"] = spec::json::array();
  for (const auto& st : stages) {
    j["stages"].push_back({{"depth", st.depth},
                           {"width", st.width},
                           {"expand", st.expand},
                           {"kernel", st.kernel},
                           {"stride", st.stride},
                           {"se", st.se},
                           {"act", st.act}});
  }
  j["head"] = {{"width", head_width}, {"act", head_act}};
}

void Choices::write(spec::json& j) const {
  j["stem_width"] = stem_width;
  j["head_width"] = head_width;
  j["stages"] = spec::json::array();
  for (const auto& st : stages) {
    spec::json blocks = spec::json::array();
    for (const auto& b : st.blocks) blocks.push_back({{"expand", b.expand}, {"kernel", b.kernel}});
    j["stages"].push_back({{"depth", st.depth}, {"width", st.width}, {"blocks", blocks}});
  }
}

bool Choices::equals(const spec::ArchChoices& other) const {
  const auto* o = dynamic_cast<const Choices*>(&other);
  return o && stem_width == o->stem_width && stages == o->stages && head_width == o->head_width;
}

}  // namespace nas::families::mbconv
