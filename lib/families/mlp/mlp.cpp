#include "families/mlp/mlp.h"

#include <algorithm>

#include "core/error.h"

namespace nas::families::mlp {
namespace {

// Decisions: resolution (one option), depth, then per layer slot up to the largest depth its width
// (ordered) and its activation (unordered: option k is the layer's k-th listed activation).
class MlpEncoding : public FamilyEncoding {
 public:
  explicit MlpEncoding(const spec::SearchSpace& space) : space_name_(space.name), space_(space_of(space)) {
    const Space& s = space_of(space);
    add_sizes("resolution", space.resolution, "resolution");
    add_sizes("depth", s.depth, "depth");
    for (size_t i = 0; i < s.layers.size(); ++i) {
      const std::string q = "layer" + std::to_string(i) + ".";
      add_sizes(q + "width", s.layers[i].width, "width");
      add_names(q + "act", s.layers[i].act, "act");
    }
  }

  bool active(const Genotype& g, size_t i) const override { return i < 2 || layer(i) < value(g, kDepth); }

  spec::Arch decode(const Genotype& g) const override {
    spec::Arch a;
    a.space = space_name_;
    a.resolution = value(g, 0);
    auto c = std::make_shared<Choices>();
    c->layers.resize(static_cast<size_t>(value(g, kDepth)));
    for (size_t l = 0; l < c->layers.size(); ++l) {
      c->layers[l].width = value(g, width_decision(l));
      c->layers[l].act = space_.layers[l].act[static_cast<size_t>(value(g, width_decision(l) + 1))];
    }
    a.choices = c;
    return a;
  }

  Genotype encode(const spec::Arch& arch) const override {
    const Choices& a = choices_of(arch);
    Genotype g(decisions_.size(), 0);
    g[0] = option_of(0, arch.resolution);
    g[kDepth] = option_of(kDepth, static_cast<int>(a.layers.size()));
    for (size_t l = 0; l < a.layers.size(); ++l) {
      const auto& acts = space_.layers[l].act;
      g[width_decision(l)] = option_of(width_decision(l), a.layers[l].width);
      g[width_decision(l) + 1] =
          static_cast<int>(std::find(acts.begin(), acts.end(), a.layers[l].act) - acts.begin());
    }
    return g;
  }

 private:
  static constexpr size_t kDepth = 1;
  static size_t width_decision(size_t layer) { return 2 + 2 * layer; }
  static int layer(size_t decision) { return static_cast<int>((decision - 2) / 2); }
  std::string space_name_;
  Space space_;
};

class MlpFamily : public Family {
 public:
  std::string name() const override { return "mlp"; }
  std::string choices_key() const override { return "layers"; }
  std::string choices_description() const override { return "the hidden layers of an mlp child"; }

  void read_space(spec::Obj& o, spec::SearchSpace& s) const override {
    s.resolution = sorted_set(o, "resolution", 1, kMaxResolution);
    if (s.resolution.size() != 1)
      o.fail("resolution", "exactly one input resolution (the first layer's width is fixed by it)", o.raw("resolution"));
    auto space = std::make_shared<Space>();
    space->depth = sorted_set(o, "depth", 1, kMaxDepth);
    auto layers = o.objects("layers");
    const size_t max_depth = static_cast<size_t>(spec::max_of(space->depth));
    if (layers.size() != 1 && layers.size() != max_depth)
      o.fail("layers",
             "one layer spec for every layer, or " + std::to_string(max_depth) + " (one per layer up to max(depth))",
             o.raw("layers"));
    for (auto& lo : layers) {
      LayerSpec l;
      l.width = sorted_set(lo, "width", 1, 1 << 16);
      l.act = name_set(lo, "act", spec::activation_names(), "activations", "", /*one_alone=*/true);
      lo.finish();
      space->layers.push_back(l);
    }
    while (space->layers.size() < max_depth) space->layers.push_back(space->layers.front());
    o.finish();
    s.choices = space;
  }

  bool claims(const spec::json& j) const override { return j.contains("layers") && !j["layers"].is_null(); }

  std::shared_ptr<const spec::ArchChoices> read_arch(spec::Obj& o) const override {
    auto c = std::make_shared<Choices>();
    auto layers = o.objects("layers");
    if (layers.empty()) o.fail("layers", "a non-empty list of hidden layers", o.raw("layers"));
    for (auto& lo : layers) {
      LayerArch l;
      l.width = static_cast<int>(lo.integer("width", 1, 1 << 16));
      l.act = lo.string("act");
      lo.finish();
      c->layers.push_back(l);
    }
    o.finish();
    return c;
  }

  void validate(const spec::Arch& arch, const spec::SearchSpace& space, const std::string& file) const override {
    const Choices& a = choices_of(arch);
    const Space& s = space_of(space);
    check_choice(file, "depth", static_cast<int>(a.layers.size()), s.depth);
    for (size_t i = 0; i < a.layers.size(); ++i) {
      const std::string p = "layers[" + std::to_string(i) + "]";
      check_choice(file, p + ".width", a.layers[i].width, s.layers[i].width);
      check_name(file, p + ".act", a.layers[i].act, s.layers[i].act);
    }
  }

  std::string summary(const spec::Arch& arch) const override {
    const Choices& a = choices_of(arch);
    std::string out = "[";
    for (size_t i = 0; i < a.layers.size(); ++i)
      out += (i ? ", " : "") + std::to_string(a.layers[i].width) + " " + a.layers[i].act;
    return out + "]";
  }

  // The activation does not change the size: each layer takes its first-listed one.
  void at_levels(const spec::SearchSpace& space, const Levels& l, spec::Arch& a) const override {
    const Space& s = space_of(space);
    auto c = std::make_shared<Choices>();
    const int depth = at_level(s.depth, l.depth);
    for (size_t i = 0; i < static_cast<size_t>(depth); ++i)
      c->layers.push_back({at_level(s.layers[i].width, l.width), s.layers[i].act.front()});
    a.choices = c;
  }

  void draw(const spec::SearchSpace& space, Rng& rng, const Pick& pick, bool, spec::Arch& a) const override {
    const Space& s = space_of(space);
    auto c = std::make_shared<Choices>();
    const int depth = s.depth[pick(s.depth.size())];
    for (size_t i = 0; i < static_cast<size_t>(depth); ++i) {
      const auto& ls = s.layers[i];
      const int w = ls.width[pick(ls.width.size())];
      c->layers.push_back({w, ls.act[rng.below(ls.act.size())]});
    }
    a.choices = c;
  }

  bool mutate(const spec::SearchSpace& space, Rng& rng, double prob, spec::Arch& arch) const override {
    const Space& s = space_of(space);
    Choices& a = edit<Choices>(arch);
    int d = static_cast<int>(a.layers.size());
    if (rng.uniform() < prob) d = neighbour(s.depth, d, rng);
    while (static_cast<int>(a.layers.size()) < d) {  // a new layer: its set's smallest width, first act
      const auto& ls = s.layers[a.layers.size()];
      a.layers.push_back({ls.width.front(), ls.act.front()});
    }
    a.layers.resize(static_cast<size_t>(d));
    for (size_t i = 0; i < a.layers.size(); ++i) {
      const auto& ls = s.layers[i];
      if (rng.uniform() < prob) a.layers[i].width = neighbour(ls.width, a.layers[i].width, rng);
      if (ls.act.size() > 1 && rng.uniform() < prob) {  // activations are unordered: any other one
        auto it = std::find(ls.act.begin(), ls.act.end(), a.layers[i].act);
        const size_t cur = it == ls.act.end() ? 0 : static_cast<size_t>(it - ls.act.begin());
        a.layers[i].act = ls.act[other_option(cur, ls.act.size(), rng)];
      }
    }
    return true;
  }

  // The flattened input is a view of the input X; each layer: bias-free Linear, BN, activation.
  Cost cost(const spec::SearchSpace&, const spec::Arch& arch, int in_channels, int num_classes) const override {
    const Choices& a = choices_of(arch);
    Cost c;
    auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
    const int64_t X = int64_t{in_channels} * arch.resolution * arch.resolution;
    int64_t in = X;
    for (size_t i = 0; i < a.layers.size(); ++i) {
      const int64_t w = a.layers[i].width;
      live(X + (i == 0 ? 0 : in) + w);
      // BN's inference kernel makes a per-channel scale and shift: at batch 1 as large as the
      // layer (on feature maps they are negligible). Then the activation: input and output.
      live(X + 4 * w);
      c.macs += in * w;
      c.params += in * w + 2 * w;
      in = w;
    }
    live(X + in + num_classes);
    c.macs += in * num_classes;
    c.params += in * num_classes + num_classes;
    return c;
  }

  std::unique_ptr<FamilyEncoding> encoding(const spec::SearchSpace& s) const override {
    return std::make_unique<MlpEncoding>(s);
  }
};

}  // namespace

const Family& family() {
  static const MlpFamily f;
  return f;
}

void Space::write(spec::json& j) const {
  j["depth"] = depth;
  j["layers"] = spec::json::array();
  for (const auto& l : layers) j["layers"].push_back({{"width", l.width}, {"act", l.act}});
}

void Choices::write(spec::json& j) const {
  j["layers"] = spec::json::array();
  for (const auto& l : layers) j["layers"].push_back({{"width", l.width}, {"act", l.act}});
}

bool Choices::equals(const spec::ArchChoices& other) const {
  const auto* o = dynamic_cast<const Choices*>(&other);
  return o && layers == o->layers;
}

}  // namespace nas::families::mlp
