#include "families/resnet/resnet.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "nn/shapes.h"

namespace nas::families::resnet {
namespace {

// Decisions: resolution, width multiplier, then per stage its depth and, for each block slot up to
// the largest depth, the expand ratio.
class ResnetEncoding : public FamilyEncoding {
 public:
  explicit ResnetEncoding(const spec::SearchSpace& space) : space_name_(space.name) {
    const Space& s = space_of(space);
    add_sizes("resolution", space.resolution, "resolution");
    add_sizes("width_mult", s.width_mult, "width");
    for (size_t i = 0; i < s.stages.size(); ++i) {
      const std::string p = "stage" + std::to_string(i) + ".";
      const int stage = static_cast<int>(i);
      depth_index_.push_back(decisions_.size());
      add_sizes(p + "depth", s.stages[i].depth, "depth");
      slot_.push_back({stage, -1});
      for (int b = 0; b < spec::max_of(s.stages[i].depth); ++b) {
        add_sizes(p + "block" + std::to_string(b) + ".expand", s.stages[i].expand, "expand");
        slot_.push_back({stage, b});
      }
    }
  }

  bool active(const Genotype& g, size_t i) const override {
    if (i < 2) return true;
    const Slot& s = slot_[i - 2];
    return s.block < 0 || s.block < value(g, depth_index_[static_cast<size_t>(s.stage)]);
  }

  spec::Arch decode(const Genotype& g) const override {
    spec::Arch a;
    a.space = space_name_;
    a.resolution = value(g, 0);
    auto c = std::make_shared<Choices>();
    c->width_mult = value(g, 1);
    c->stages.resize(depth_index_.size());
    for (size_t i = 2; i < g.size(); ++i) {
      const Slot& s = slot_[i - 2];
      StageArch& st = c->stages[static_cast<size_t>(s.stage)];
      if (s.block < 0)
        st.depth = value(g, i);
      else if (s.block < st.depth)
        st.expand.push_back(value(g, i));
    }
    a.choices = c;
    return a;
  }

  Genotype encode(const spec::Arch& arch) const override {
    const Choices& c = choices_of(arch);
    Genotype g(decisions_.size(), 0);
    g[0] = option_of(0, arch.resolution);
    g[1] = option_of(1, c.width_mult);
    for (size_t i = 2; i < g.size(); ++i) {
      const Slot& s = slot_[i - 2];
      const StageArch& st = c.stages[static_cast<size_t>(s.stage)];
      if (s.block < 0)
        g[i] = option_of(i, st.depth);
      else if (s.block < st.depth)
        g[i] = option_of(i, st.expand[static_cast<size_t>(s.block)]);
    }
    return g;
  }

 private:
  struct Slot {
    int stage;
    int block;  // -1: the stage's depth
  };
  std::string space_name_;
  std::vector<Slot> slot_;            // per decision after resolution and width_mult
  std::vector<size_t> depth_index_;  // per stage, the index of its depth decision
};

StageSpec stage_from(spec::Obj& so) {
  StageSpec st;
  st.width = static_cast<int>(so.integer("width", 1, kMaxWidth));
  st.depth = sorted_set(so, "depth", 1, kMaxDepth);
  st.expand = sorted_set(so, "expand", 1, 400);
  st.stride = static_cast<int>(so.integer_or("stride", 1, 1, 4));
  so.finish();
  return st;
}

class ResnetFamily : public Family {
 public:
  std::string name() const override { return "resnet"; }
  bool runs_at_any_resolution() const override { return true; }
  std::string choices_key() const override { return "width_mult"; }
  std::string choices_description() const override {
    return "width_mult and stages (the choices of a resnet child)";
  }

  void read_space(spec::Obj& o, spec::SearchSpace& s) const override {
    s.resolution = sorted_set(o, "resolution", 8, kMaxResolution);
    auto space = std::make_shared<Space>();
    space->width_mult = sorted_set(o, "width_mult", 1, 400);
    {
      spec::Obj st = o.object("stem");
      space->stem_width = static_cast<int>(st.integer("width", 1, kMaxWidth));
      st.finish();
    }
    auto stages = o.objects("stages");
    if (stages.empty() || stages.size() > static_cast<size_t>(kMaxStages))
      o.fail("stages", "a list of 1 to " + std::to_string(kMaxStages) + " stages", o.raw("stages"));
    for (auto& so : stages) space->stages.push_back(stage_from(so));
    o.finish();
    const int widest = scaled(std::max_element(space->stages.begin(), space->stages.end(),
                                               [](const auto& a, const auto& b) { return a.width < b.width; })
                                  ->width,
                              spec::max_of(space->width_mult));
    NAS_CHECK(widest <= kMaxWidth, SpecError,
              o.file() << ": width_mult: expected at most " << kMaxWidth << " channels in the widest stage, found "
                       << widest);
    s.choices = space;
  }

  bool claims(const spec::json& j) const override { return j.contains("width_mult") && !j["width_mult"].is_null(); }

  std::shared_ptr<const spec::ArchChoices> read_arch(spec::Obj& o) const override {
    auto c = std::make_shared<Choices>();
    c->width_mult = static_cast<int>(o.integer("width_mult", 1, 400));
    auto stages = o.objects("stages");
    if (stages.empty()) o.fail("stages", "a non-empty list of stages", o.raw("stages"));
    for (auto& so : stages) {
      StageArch st;
      st.depth = static_cast<int>(so.integer("depth", 1, 1024));
      const spec::json& e = so.raw("expand");
      if (!e.is_array() || e.size() != static_cast<size_t>(st.depth))
        so.fail("expand", "a list of exactly depth=" + std::to_string(st.depth) + " expand ratios", e);
      for (const auto& v : e) {
        if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 400)
          so.fail("expand", "expand ratios in percent, integers in [1, 400]", e);
        st.expand.push_back(v.get<int>());
      }
      so.finish();
      c->stages.push_back(st);
    }
    o.finish();
    return c;
  }

  void validate(const spec::Arch& arch, const spec::SearchSpace& space, const std::string& file) const override {
    const Choices& a = choices_of(arch);
    const Space& s = space_of(space);
    check_choice(file, "width_mult", a.width_mult, s.width_mult);
    NAS_CHECK(a.stages.size() == s.stages.size(), SpecError,
              file << ": stages: expected " << s.stages.size() << " stages, found " << a.stages.size());
    for (size_t i = 0; i < a.stages.size(); ++i) {
      const std::string p = "stages[" + std::to_string(i) + "]";
      check_choice(file, p + ".depth", a.stages[i].depth, s.stages[i].depth);
      NAS_CHECK(a.stages[i].expand.size() == static_cast<size_t>(a.stages[i].depth), SpecError,
                file << ": " << p << ".expand: expected " << a.stages[i].depth << " ratios, found "
                     << a.stages[i].expand.size());
      for (size_t b = 0; b < a.stages[i].expand.size(); ++b)
        check_choice(file, p + ".expand[" + std::to_string(b) + "]", a.stages[i].expand[b], s.stages[i].expand);
    }
  }

  std::string summary(const spec::Arch& arch) const override {
    const Choices& a = choices_of(arch);
    std::ostringstream os;
    os << "w" << a.width_mult;
    for (const auto& st : a.stages) {
      os << " [e";
      for (size_t b = 0; b < st.expand.size(); ++b) os << (b ? "," : "") << st.expand[b];
      os << "]";
    }
    return os.str();
  }

  void at_levels(const spec::SearchSpace& space, const Levels& l, spec::Arch& a) const override {
    const Space& s = space_of(space);
    auto c = std::make_shared<Choices>();
    c->width_mult = at_level(s.width_mult, l.width);
    for (const auto& st : s.stages) {
      const int depth = at_level(st.depth, l.depth);
      c->stages.push_back({depth, std::vector<int>(static_cast<size_t>(depth), at_level(st.expand, l.expand))});
    }
    a.choices = c;
  }

  void draw(const spec::SearchSpace& space, Rng&, const Pick& pick, bool, spec::Arch& a) const override {
    const Space& s = space_of(space);
    auto choose = [&](const std::vector<int>& set) { return set[pick(set.size())]; };
    auto c = std::make_shared<Choices>();
    c->width_mult = choose(s.width_mult);
    for (const auto& st : s.stages) {
      StageArch sa;
      sa.depth = choose(st.depth);
      for (int b = 0; b < sa.depth; ++b) sa.expand.push_back(choose(st.expand));
      c->stages.push_back(sa);
    }
    a.choices = c;
  }

  bool mutate(const spec::SearchSpace& space, Rng& rng, double prob, spec::Arch& a) const override {
    const Space& s = space_of(space);
    Choices& c = edit<Choices>(a);
    auto maybe = [&](const std::vector<int>& set, int& v) {
      if (rng.uniform() < prob) v = neighbour(set, v, rng);
    };
    maybe(s.width_mult, c.width_mult);
    for (size_t i = 0; i < c.stages.size(); ++i) {
      auto& sa = c.stages[i];
      maybe(s.stages[i].depth, sa.depth);
      // New blocks copy the last block's ratio; removed blocks drop off the end.
      sa.expand.resize(static_cast<size_t>(sa.depth), sa.expand.back());
      for (int& e : sa.expand) maybe(s.stages[i].expand, e);
    }
    return true;
  }

  Cost cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const override;

  std::unique_ptr<FamilyEncoding> encoding(const spec::SearchSpace& s) const override {
    return std::make_unique<ResnetEncoding>(s);
  }
};

// Live activations follow the child's eager forward (one statement per layer, resnet/modules.cpp):
// the network input is held by the caller throughout, a block's input until the block returns, and
// each conv / BN / activation has its input and its output alive at once.
Cost ResnetFamily::cost(const spec::SearchSpace& space, const spec::Arch& arch, int in_channels,
                        int num_classes) const {
  const Space& s = space_of(space);
  const Choices& a = choices_of(arch);
  Cost c;
  auto conv = [&](int64_t ci, int64_t co, int64_t k, int64_t px) {
    c.macs += px * co * ci * k * k;
    c.params += co * ci * k * k + 2 * co;  // its BN's affine parameters too
  };
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  const int64_t X = int64_t{in_channels} * arch.resolution * arch.resolution;
  int64_t res = arch.resolution, ch = scaled(s.stem_width, a.width_mult);
  conv(in_channels, ch, 3, res * res);
  live(X + 2 * res * res * ch);
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const int64_t out = scaled(s.stages[i].width, a.width_mult);
    for (int b = 0; b < a.stages[i].depth; ++b) {
      const int stride = b == 0 ? s.stages[i].stride : 1;
      const int64_t mid = scaled(static_cast<int>(out), a.stages[i].expand[static_cast<size_t>(b)]);
      const int64_t out_res = nn::conv_out(static_cast<int>(res), stride);
      const int64_t e = res * res * mid, d = out_res * out_res * mid, p = out_res * out_res * out;
      const int64_t held = X + res * res * ch;  // the block's input, held throughout
      conv(ch, mid, 1, res * res);
      live(held + 2 * e);
      conv(mid, mid, 3, out_res * out_res);
      live(held + e + d);
      live(held + 2 * d);
      conv(mid, out, 1, out_res * out_res);
      live(held + d + p);
      live(held + 2 * p);
      const bool projects = stride != 1 || ch != out;
      if (projects) {
        conv(ch, out, 1, out_res * out_res);
        live(held + 3 * p);  // the main branch, the shortcut's conv output and its BN's
      }
      live(held + (projects ? 3 : 2) * p);  // the sum (and the shortcut), then the ReLU
      ch = out;
      res = out_res;
    }
  }
  live(X + res * res * ch + ch);  // global average pooling
  c.macs += ch * num_classes;
  c.params += ch * num_classes + num_classes;
  return c;
}

}  // namespace

const Family& family() {
  static const ResnetFamily f;
  return f;
}

void Space::write(spec::json& j) const {
  j["width_mult"] = width_mult;
  j["stem"] = {{"width", stem_width}};
  j["stages"] = spec::json::array();
  for (const auto& st : stages)
    j["stages"].push_back({{"width", st.width}, {"depth", st.depth}, {"expand", st.expand}, {"stride", st.stride}});
}

void Choices::write(spec::json& j) const {
  j["width_mult"] = width_mult;
  j["stages"] = spec::json::array();
  for (const auto& st : stages) j["stages"].push_back({{"depth", st.depth}, {"expand", st.expand}});
}

bool Choices::equals(const spec::ArchChoices& other) const {
  const auto* o = dynamic_cast<const Choices*>(&other);
  return o && width_mult == o->width_mult && stages == o->stages;
}

}  // namespace nas::families::resnet
