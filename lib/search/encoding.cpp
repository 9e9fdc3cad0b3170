#include "search/encoding.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "core/error.h"

namespace nas::search {

bool Encoding::active(const Genotype&, size_t) const { return true; }

Genotype Encoding::canonical(const Genotype& g) const {
  Genotype c = g;
  for (size_t i = 0; i < c.size(); ++i)
    if (!active(g, i)) c[i] = 0;
  return c;
}

std::string Encoding::key(const Genotype& g) const { return spec::json_hash(to_json(g)); }

uint64_t Encoding::cardinality() const {
  // Exact only when every decision is active in every child; an upper bound otherwise.
  uint64_t n = 1;
  for (const auto& d : decisions_) {
    uint64_t k = static_cast<uint64_t>(std::max(1, d.size()));
    if (n > UINT64_MAX / k) return UINT64_MAX;
    n *= k;
  }
  return n;
}

Genotype Encoding::random(Rng& rng) const {
  Genotype g(decisions_.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<int>(rng.below(static_cast<uint64_t>(decisions_[i].size())));
  return canonical(g);
}

Genotype Encoding::mutate(const Genotype& g, Rng& rng, double prob) const {
  std::vector<size_t> movable;
  for (size_t i = 0; i < g.size(); ++i)
    if (decisions_[i].size() > 1 && active(g, i)) movable.push_back(i);
  if (movable.empty()) return g;
  auto step = [&](Genotype& x, size_t i) {
    int n = decisions_[i].size();
    if (!decisions_[i].ordered)
      x[i] = (x[i] + 1 + static_cast<int>(rng.below(static_cast<uint64_t>(n - 1)))) % n;
    else if (x[i] == 0)
      x[i] = 1;
    else if (x[i] == n - 1)
      x[i] = n - 2;
    else
      x[i] += rng.below(2) ? 1 : -1;
  };
  Genotype out = g;
  bool moved = false;
  for (size_t i : movable) {
    if (!active(out, i)) continue;  // a depth that just shrank
    if (rng.uniform() < prob) {
      step(out, i);
      moved = true;
    }
  }
  if (!moved) step(out, movable[rng.below(movable.size())]);
  return canonical(out);
}

Genotype Encoding::crossover(const Genotype& a, const Genotype& b, Rng& rng) const {
  Genotype c(a.size());
  for (size_t i = 0; i < a.size(); ++i) c[i] = rng.below(2) ? a[i] : b[i];
  return canonical(c);
}

std::vector<Genotype> Encoding::neighbours(const Genotype& g) const {
  std::vector<Genotype> out;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!active(g, i)) continue;
    for (int v = 0; v < decisions_[i].size(); ++v) {
      if (v == g[i] || (decisions_[i].ordered && std::abs(v - g[i]) != 1)) continue;
      Genotype n = g;
      n[i] = v;
      out.push_back(canonical(n));
    }
  }
  return out;
}

void Encoding::check(const Genotype& g, const std::string& what) const {
  NAS_CHECK(g.size() == decisions_.size(), SpecError,
            what << ": expected " << decisions_.size() << " decisions, found " << g.size());
  for (size_t i = 0; i < g.size(); ++i)
    NAS_CHECK(g[i] >= 0 && g[i] < decisions_[i].size(), SpecError,
              what << ": " << decisions_[i].name << ": expected an option index in [0, " << decisions_[i].size()
                   << "), found " << g[i]);
}

// ---- mbconv ----

namespace {
std::vector<std::string> labels_of(const std::vector<int>& v) {
  std::vector<std::string> l;
  for (int x : v) l.push_back(std::to_string(x));
  return l;
}
int index_of(const std::vector<int>& v, int x) {
  auto it = std::find(v.begin(), v.end(), x);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}
}  // namespace

MbconvEncoding::MbconvEncoding(const spec::SearchSpace& space) : space_(space) {
  auto add = [&](const std::string& name, const std::vector<int>& values, int stage, int block) {
    std::vector<int> v = values;
    std::sort(v.begin(), v.end());
    std::string group = name.substr(name.rfind('.') + 1);  // resolution, depth, width, expand, kernel
    if (group == "stem_width" || group == "head_width") group = "width";
    decisions_.push_back({name, labels_of(v), group, true});
    values_.push_back(v);
    slots_.push_back({stage, block});
  };
  add("resolution", space.resolution, -1, -1);
  if (space.is_cell()) {
    // per cell type and edge: the op (values index the space's op list; labels are the names)
    std::vector<int> idx(space.ops.size());
    for (size_t k = 0; k < idx.size(); ++k) idx[k] = static_cast<int>(k);
    for (int c = 0; c < 2; ++c) {
      for (const auto& node : spec::cell_nodes(space.nodes))
        for (const auto& edge : node.inputs) {
          decisions_.push_back({std::string(c ? "reduce" : "normal") + ".node" + std::to_string(node.to) + ".edge" +
                                    std::to_string(edge.from),
                                space.ops, "op", false});
          values_.push_back(idx);
          slots_.push_back({c, static_cast<int>(edge.index)});
        }
    }
    return;
  }
  if (space.is_mlp()) {
    // depth, then per layer slot up to the largest depth: width, and the activation (its values
    // are indices into the layer's act list, its labels the names).
    add("depth", space.depth, 0, -1);
    for (size_t i = 0; i < space.layers.size(); ++i) {
      const std::string q = "layer" + std::to_string(i) + ".";
      add(q + "width", space.layers[i].width, 0, static_cast<int>(i));
      std::vector<int> idx(space.layers[i].act.size());
      for (size_t k = 0; k < idx.size(); ++k) idx[k] = static_cast<int>(k);
      decisions_.push_back({q + "act", space.layers[i].act, "act", false});
      values_.push_back(idx);
      slots_.push_back({0, static_cast<int>(i)});
    }
    return;
  }
  add("stem_width", space.stem_width, -1, -1);
  for (size_t s = 0; s < space.stages.size(); ++s) {
    const auto& st = space.stages[s];
    std::string p = "stage" + std::to_string(s) + ".";
    int si = static_cast<int>(s);
    add(p + "depth", st.depth, si, -1);
    add(p + "width", st.width, si, -1);
    for (int b = 0; b < spec::max_of(st.depth); ++b) {
      std::string q = p + "block" + std::to_string(b) + ".";
      add(q + "expand", st.expand, si, b);
      add(q + "kernel", st.kernel, si, b);
    }
  }
  add("head_width", space.head_width, -1, -1);
}

size_t MbconvEncoding::depth_index(int stage) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].stage == stage && slots_[i].block < 0) return i;  // "depth" comes first per stage
  return 0;
}

bool MbconvEncoding::active(const Genotype& g, size_t i) const {
  const Slot& s = slots_[i];
  if (space_.is_cell()) {  // a kind of cell the network lacks: its edges do not matter
    if (s.stage == 1) return space_.cells.size() > 1;
    if (s.stage == 0) return std::any_of(space_.cells.begin(), space_.cells.end(), [](int n) { return n > 0; });
    return true;
  }
  if (s.block < 0) return true;
  size_t d = depth_index(s.stage);
  return s.block < values_[d][static_cast<size_t>(g[d])];
}

spec::Arch MbconvEncoding::decode(const Genotype& g) const {
  check(g, "genotype");
  spec::Arch a;
  a.space = space_.name;
  if (space_.is_cell()) {
    a.resolution = space_.resolution.front();
    a.normal.resize(static_cast<size_t>(space_.num_edges()));
    a.reduce.resize(static_cast<size_t>(space_.num_edges()));
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.stage < 0) continue;
      (s.stage ? a.reduce : a.normal)[static_cast<size_t>(s.block)] = space_.ops[static_cast<size_t>(g[i])];
    }
    return a;
  }
  if (space_.is_mlp()) {
    a.resolution = space_.resolution.front();
    const int depth = values_[depth_index(0)][static_cast<size_t>(g[depth_index(0)])];
    a.layers.resize(static_cast<size_t>(depth));
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.block < 0 || s.block >= depth) continue;
      auto& l = a.layers[static_cast<size_t>(s.block)];
      const int v = values_[i][static_cast<size_t>(g[i])];
      if (decisions_[i].group == "act")
        l.act = space_.layers[static_cast<size_t>(s.block)].act[static_cast<size_t>(v)];
      else
        l.width = v;
    }
    return a;
  }
  a.stages.resize(space_.stages.size());
  for (size_t i = 0; i < g.size(); ++i) {
    int v = values_[i][static_cast<size_t>(g[i])];
    const Slot& s = slots_[i];
    const std::string& n = decisions_[i].name;
    if (s.stage < 0) {
      if (n == "resolution") a.resolution = v;
      else if (n == "stem_width") a.stem_width = v;
      else a.head_width = v;
      continue;
    }
    auto& st = a.stages[static_cast<size_t>(s.stage)];
    if (s.block < 0) {
      if (n.size() >= 5 && n.compare(n.size() - 5, 5, "depth") == 0) st.depth = v;
      else st.width = v;
      continue;
    }
    if (s.block >= st.depth) continue;  // depth precedes the block slots
    if (static_cast<int>(st.blocks.size()) <= s.block) st.blocks.resize(static_cast<size_t>(s.block) + 1);
    if (n.size() >= 6 && n.compare(n.size() - 6, 6, "expand") == 0)
      st.blocks[static_cast<size_t>(s.block)].expand = v;
    else
      st.blocks[static_cast<size_t>(s.block)].kernel = v;
  }
  return a;
}

Genotype MbconvEncoding::encode(const spec::Arch& a) const {
  spec::validate_arch(a, space_, "arch");
  Genotype g(decisions_.size(), 0);
  if (space_.is_cell()) {
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.stage < 0) continue;  // the one resolution
      const auto& op = (s.stage ? a.reduce : a.normal)[static_cast<size_t>(s.block)];
      g[i] = static_cast<int>(std::find(space_.ops.begin(), space_.ops.end(), op) - space_.ops.begin());
    }
    return g;
  }
  if (space_.is_mlp()) {
    for (size_t i = 0; i < g.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.stage < 0) {
        g[i] = index_of(values_[i], a.resolution);
      } else if (s.block < 0) {
        g[i] = index_of(values_[i], static_cast<int>(a.layers.size()));
      } else if (s.block < static_cast<int>(a.layers.size())) {
        const auto& l = a.layers[static_cast<size_t>(s.block)];
        if (decisions_[i].group == "act") {
          const auto& acts = space_.layers[static_cast<size_t>(s.block)].act;
          g[i] = static_cast<int>(std::find(acts.begin(), acts.end(), l.act) - acts.begin());
        } else {
          g[i] = index_of(values_[i], l.width);
        }
      }
    }
    return g;
  }
  for (size_t i = 0; i < g.size(); ++i) {
    const Slot& s = slots_[i];
    const std::string& n = decisions_[i].name;
    int v;
    if (s.stage < 0) {
      v = n == "resolution" ? a.resolution : n == "stem_width" ? a.stem_width : a.head_width;
    } else {
      const auto& st = a.stages[static_cast<size_t>(s.stage)];
      if (s.block < 0) {
        v = n.compare(n.size() - 5, 5, "depth") == 0 ? st.depth : st.width;
      } else if (s.block < st.depth) {
        const auto& b = st.blocks[static_cast<size_t>(s.block)];
        v = n.compare(n.size() - 6, 6, "expand") == 0 ? b.expand : b.kernel;
      } else {
        continue;  // inactive: option 0
      }
    }
    g[i] = index_of(values_[i], v);
  }
  return g;
}

spec::json MbconvEncoding::to_json(const Genotype& g) const { return spec::to_json(decode(g)); }

Genotype MbconvEncoding::from_json(const spec::json& j, const std::string& file) const {
  return encode(spec::arch_from_json(j, file));
}

std::string MbconvEncoding::key(const Genotype& g) const { return spec::arch_hash(decode(g)); }

std::string MbconvEncoding::space_hash() const { return spec::json_hash(spec::to_json(space_)); }

// ---- generic ----

GenericEncoding::GenericEncoding(const spec::json& decisions, const std::string& file, const std::string& space_name)
    : name_(space_name) {
  NAS_CHECK(decisions.is_array() && !decisions.empty(), SpecError,
            file << ": decisions: expected a non-empty list of {name, choices}, found " << spec::describe(decisions));
  std::set<std::string> names;
  for (size_t i = 0; i < decisions.size(); ++i) {
    spec::Obj o(decisions[i], file, "decisions[" + std::to_string(i) + "]");
    std::string name = o.string("name");
    NAS_CHECK(names.insert(name).second, SpecError,
              file << ": " << o.where("name") << ": expected a unique decision name, found \"" << name
                   << "\" twice");
    const spec::json& ch = o.raw("choices");
    NAS_CHECK(ch.is_array() && !ch.empty(), SpecError,
              file << ": " << o.where("choices") << ": expected a non-empty list, found " << spec::describe(ch));
    Decision d{name, {}, name, true};
    std::set<std::string> seen;
    bool numbers = true;
    for (const auto& c : ch) {
      numbers = numbers && c.is_number();
      NAS_CHECK(c.is_number() || c.is_string() || c.is_boolean(), SpecError,
                file << ": " << o.where("choices") << ": expected numbers, strings or booleans, found "
                     << spec::describe(c));
      std::string label = c.is_string() ? c.get<std::string>() : c.dump();
      NAS_CHECK(seen.insert(label).second, SpecError,
                file << ": " << o.where("choices") << ": expected distinct options, found " << label << " twice");
      d.labels.push_back(label);
    }
    d.ordered = o.boolean_or("ordered", numbers);
    o.finish();
    decisions_.push_back(d);
    values_.push_back(ch);
  }
}

spec::json GenericEncoding::canonical_json() const {
  spec::json ds = spec::json::array();
  for (size_t i = 0; i < decisions_.size(); ++i)
    ds.push_back({{"name", decisions_[i].name}, {"choices", values_[i]}, {"ordered", decisions_[i].ordered}});
  return {{"kind", spec::kSearchSpaceKind},
          {"schema_version", spec::kSearchSpaceVersion},
          {"name", name_},
          {"family", "generic"},
          {"decisions", ds}};
}

spec::json GenericEncoding::to_json(const Genotype& g) const {
  check(g, "genotype");
  spec::json choices = spec::json::object();
  for (size_t i = 0; i < g.size(); ++i) choices[decisions_[i].name] = values_[i][static_cast<size_t>(g[i])];
  return {{"kind", spec::kArchKind}, {"schema_version", spec::kArchVersion}, {"space", name_}, {"choices", choices}};
}

Genotype GenericEncoding::from_json(const spec::json& j, const std::string& file) const {
  spec::Obj o(j, file, "");
  spec::check_header(o, spec::kArchKind, spec::kArchVersion);
  std::string space = o.string("space");
  NAS_CHECK(space == name_, SpecError, file << ": space: expected \"" << name_ << "\", found \"" << space << "\"");
  spec::Obj c = o.object("choices");
  Genotype g(decisions_.size());
  for (size_t i = 0; i < g.size(); ++i) {
    const spec::json& v = c.raw(decisions_[i].name);
    auto it = std::find(values_[i].begin(), values_[i].end(), v);
    if (it == values_[i].end()) {
      std::string allowed;
      for (const auto& l : decisions_[i].labels) allowed += (allowed.empty() ? "" : ", ") + l;
      c.fail(decisions_[i].name, "one of " + allowed, v);
    }
    g[i] = static_cast<int>(it - values_[i].begin());
  }
  c.finish();
  o.finish();
  return g;
}

std::unique_ptr<GenericEncoding> generic_space_from_json(const spec::json& j, const std::string& file) {
  spec::Obj o(j, file, "");
  spec::check_header(o, spec::kSearchSpaceKind, spec::kSearchSpaceVersion);
  std::string name = o.string("name");
  o.one_of("family", {"generic"});
  auto enc = std::make_unique<GenericEncoding>(o.raw("decisions"), file, name);
  o.finish();
  return enc;
}

std::string space_family(const spec::json& j) {
  if (j.is_object() && j.contains("family") && j["family"].is_string()) return j["family"].get<std::string>();
  return "mbconv";
}

}  // namespace nas::search
