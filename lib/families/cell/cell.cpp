#include "families/cell/cell.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "nn/shapes.h"

namespace nas::families::cell {
namespace {

// A cell space's non-none ops for one edge, cheapest first (MACs, then parameters, then the order
// the space lists them), costed where the edge first occurs: a normal cell of the first stage, or
// the first reduction cell (its edges from the input node have stride 2 and double the channels).
std::vector<std::string> ranked_ops(const spec::SearchSpace& space, bool reduce, bool from_input) {
  const Space& s = space_of(space);
  const int64_t c = s.width, r = space.resolution.front();
  std::vector<std::pair<Cost, size_t>> costed;
  for (size_t k = 0; k < s.ops.size(); ++k) {
    if (s.ops[k] == "none") continue;
    Cost cost = !reduce       ? op_cost(s.ops[k], c, c, 1, r)
                : from_input ? op_cost(s.ops[k], c, 2 * c, 2, r)
                             : op_cost(s.ops[k], 2 * c, 2 * c, 1, nn::conv_out(static_cast<int>(r), 2));
    costed.push_back({cost, k});
  }
  std::stable_sort(costed.begin(), costed.end(), [](const auto& x, const auto& y) {
    return x.first.macs != y.first.macs ? x.first.macs < y.first.macs : x.first.params < y.first.params;
  });
  std::vector<std::string> out;
  for (const auto& c2 : costed) out.push_back(s.ops[c2.second]);
  return out;
}

bool has_none(const spec::SearchSpace& s) {
  const auto& ops = space_of(s).ops;
  return std::find(ops.begin(), ops.end(), "none") != ops.end();
}

// Calls f(cell, edge, reduce, from_input) for every edge of both cells of `a`, whose choices it
// sets: a's own copy of them, sized to the space.
template <typename F>
void for_each_edge(const spec::SearchSpace& space, spec::Arch& arch, F f) {
  const Space& s = space_of(space);
  auto a = arch.choices ? std::make_shared<Choices>(choices_of(arch)) : std::make_shared<Choices>();
  for (auto* cell : {&a->normal, &a->reduce}) {
    cell->resize(static_cast<size_t>(s.num_edges()));
    for (const auto& node : nodes_of(s.nodes))
      for (const auto& edge : node.inputs) f(*cell, edge.index, cell == &a->reduce, edge.from == 0);
  }
  arch.choices = a;
}

// A cell space's ops by cost rank for the three kinds of edge (normal, reduction from the input
// node, reduction between inner nodes), with none first when `with_none` and the space has it.
struct RankedOps {
  RankedOps(const spec::SearchSpace& s, bool with_none) {
    const bool none = with_none && has_none(s);
    const std::pair<bool, bool> kinds[3] = {{false, false}, {true, true}, {true, false}};
    for (int k = 0; k < 3; ++k) {
      if (none) of_kind[k].push_back("none");
      for (auto& op : ranked_ops(s, kinds[k].first, kinds[k].second)) of_kind[k].push_back(op);
    }
  }
  const std::vector<std::string>& operator()(bool reduce, bool from_input) const {
    return of_kind[reduce ? (from_input ? 1 : 2) : 0];
  }
  std::vector<std::string> of_kind[3];
};

// Decisions: resolution (one option), then the op of every edge of the normal cell, then of the
// reduction cell ("normal.node2.edge1": the edge from node 1 into node 2), unordered.
class CellEncoding : public FamilyEncoding {
 public:
  explicit CellEncoding(const spec::SearchSpace& space) : space_name_(space.name), space_(space_of(space)) {
    const Space& s = space_;
    add_sizes("resolution", space.resolution, "resolution");
    for (const char* cell : {"normal", "reduce"})
      for (const auto& node : nodes_of(s.nodes))
        for (const auto& edge : node.inputs)
          add_names(std::string(cell) + ".node" + std::to_string(node.to) + ".edge" + std::to_string(edge.from), s.ops,
                    "op");
  }

  // A kind of cell the network lacks: its edges do not matter.
  bool active(const Genotype&, size_t i) const override {
    if (i == 0) return true;
    if (i > edges()) return space_.cells.size() > 1;
    return std::any_of(space_.cells.begin(), space_.cells.end(), [](int n) { return n > 0; });
  }

  spec::Arch decode(const Genotype& g) const override {
    std::vector<std::string> normal, reduce;
    for (size_t e = 0; e < edges(); ++e) {
      normal.push_back(space_.ops[static_cast<size_t>(g[1 + e])]);
      reduce.push_back(space_.ops[static_cast<size_t>(g[1 + edges() + e])]);
    }
    return make_arch(space_name_, value(g, 0), normal, reduce);
  }

  Genotype encode(const spec::Arch& arch) const override {
    const Choices& a = choices_of(arch);
    Genotype g(decisions_.size(), 0);
    auto op_index = [&](const std::string& op) {
      return static_cast<int>(std::find(space_.ops.begin(), space_.ops.end(), op) - space_.ops.begin());
    };
    for (size_t e = 0; e < edges(); ++e) {
      g[1 + e] = op_index(a.normal[e]);
      g[1 + edges() + e] = op_index(a.reduce[e]);
    }
    return g;
  }

 private:
  size_t edges() const { return static_cast<size_t>(space_.num_edges()); }
  std::string space_name_;
  Space space_;
};

// A non-empty list of distinct ops from op_names(), not only none.
std::vector<std::string> op_set(spec::Obj& o) {
  const std::string note = ", not only none";
  auto ops = name_set(o, "ops", op_names(), "ops", note, /*one_alone=*/false);
  if (ops.size() == 1 && ops.front() == "none") o.fail("ops", name_set_expected(op_names(), "ops", note), o.raw("ops"));
  return ops;
}

std::vector<int> cell_counts(spec::Obj& o) {
  const spec::json v = o.raw("cells");
  const std::string expected = "a list of 1 to " + std::to_string(kMaxStages) +
                               " counts of normal cells per stage (each 0 to " + std::to_string(kMaxDepth) + ")";
  if (!v.is_array() || v.empty() || v.size() > static_cast<size_t>(kMaxStages)) o.fail("cells", expected, v);
  std::vector<int> cells;
  for (const auto& e : v) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > kMaxDepth) o.fail("cells", expected, v);
    cells.push_back(e.get<int>());
  }
  return cells;
}

class CellFamily : public Family {
 public:
  std::string name() const override { return "cell"; }
  bool has_relaxation() const override { return true; }
  std::string choices_key() const override { return "cell"; }
  std::string choices_description() const override { return "the normal and reduction cells of a cell child"; }

  void read_space(spec::Obj& o, spec::SearchSpace& s) const override {
    s.resolution = sorted_set(o, "resolution", 4, kMaxResolution);
    if (s.resolution.size() != 1) o.fail("resolution", "exactly one input resolution", o.raw("resolution"));
    auto space = std::make_shared<Space>();
    space->nodes = static_cast<int>(o.integer("nodes", 1, 8));
    space->ops = op_set(o);
    space->width = static_cast<int>(o.integer("width", 1, kMaxWidth));
    space->cells = cell_counts(o);
    o.finish();
    // Channels double at each reduction cell: refused before anything is allocated when too wide.
    const int64_t widest = int64_t{space->width} << (space->cells.size() - 1);
    NAS_CHECK(widest <= kMaxWidth, SpecError,
              o.file() << ": width: expected at most " << kMaxWidth
                       << " channels in the last stage (width doubles at each of " << space->cells.size() - 1
                       << " reduction cells), found " << widest);
    s.choices = space;
  }

  bool claims(const spec::json& j) const override { return j.contains("cell") && !j["cell"].is_null(); }

  std::shared_ptr<const spec::ArchChoices> read_arch(spec::Obj& o) const override {
    auto a = std::make_shared<Choices>();
    spec::Obj c = o.object("cell");
    a->normal = parse_notation(c.string("normal"), o.file(), c.where("normal"));
    a->reduce = parse_notation(c.string("reduce"), o.file(), c.where("reduce"));
    NAS_CHECK(a->normal.size() == a->reduce.size(), SpecError,
              o.file() << ": " << c.where("reduce") << ": expected as many nodes as the normal cell ("
                       << node_count_of_edges(a->normal.size()) << "), found "
                       << node_count_of_edges(a->reduce.size()));
    c.finish();
    o.finish();
    return a;
  }

  void validate(const spec::Arch& arch, const spec::SearchSpace& space, const std::string& file) const override {
    const Choices& a = choices_of(arch);
    const Space& s = space_of(space);
    for (const auto* cell : {&a.normal, &a.reduce}) {
      const std::string p = std::string("cell.") + (cell == &a.normal ? "normal" : "reduce");
      NAS_CHECK(cell->size() == static_cast<size_t>(s.num_edges()), SpecError,
                file << ": " << p << ": expected a cell of " << s.nodes << " nodes (" << s.num_edges()
                     << " edges), found " << cell->size() << " edges");
      for (size_t e = 0; e < cell->size(); ++e) check_name(file, p + ": edge " + std::to_string(e), (*cell)[e], s.ops);
    }
  }

  std::string summary(const spec::Arch& arch) const override {
    const Choices& a = choices_of(arch);
    return "normal " + notation(a.normal) + " reduce " + notation(a.reduce);
  }

  // Every edge: the op at that fraction of its cost ranking (none excluded).
  void at_levels(const spec::SearchSpace& s, const Levels& l, spec::Arch& a) const override {
    const RankedOps kinds(s, /*with_none=*/false);
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool reduce, bool from_input) {
      const auto& ranked = kinds(reduce, from_input);
      const auto at = static_cast<size_t>(std::lround(l.width * static_cast<double>(ranked.size() - 1)));
      cell[e] = ranked[std::min(ranked.size() - 1, at)];
    });
  }

  // With the none op, every edge none.
  void cheapest(const spec::SearchSpace& s, spec::Arch& a) const override {
    Family::cheapest(s, a);
    if (has_none(s)) for_each_edge(s, a, [](std::vector<std::string>& cell, size_t e, bool, bool) { cell[e] = "none"; });
  }

  void draw(const spec::SearchSpace& s, Rng&, const Pick& pick, bool by_cost, spec::Arch& a) const override {
    std::optional<RankedOps> ranked;
    if (by_cost) ranked.emplace(s, /*with_none=*/true);
    const auto& ops = space_of(s).ops;
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool reduce, bool from_input) {
      const std::vector<std::string>& choices = ranked ? (*ranked)(reduce, from_input) : ops;
      cell[e] = choices[pick(choices.size())];
    });
  }

  // Ops are unordered: an edge that changes takes any other op.
  bool mutate(const spec::SearchSpace& s, Rng& rng, double prob, spec::Arch& a) const override {
    const auto& ops = space_of(s).ops;
    if (ops.size() < 2) return false;
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool, bool) {
      if (rng.uniform() >= prob) return;
      const size_t cur = static_cast<size_t>(std::find(ops.begin(), ops.end(), cell[e]) - ops.begin()) % ops.size();
      cell[e] = ops[other_option(cur, ops.size(), rng)];
    });
    return true;
  }

  Cost cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const override;

  std::unique_ptr<FamilyEncoding> encoding(const spec::SearchSpace& s) const override {
    return std::make_unique<CellEncoding>(s);
  }
};

// families::cell::CellNet's eager forward: the network input is held throughout; a cell holds its input node
// and every node it has computed; a node being summed holds its partial sum, an op's input (after
// ReLU) and output.
Cost CellFamily::cost(const spec::SearchSpace& space, const spec::Arch& arch, int in_channels, int num_classes) const {
  const Space& s = space_of(space);
  const Choices& a = choices_of(arch);
  Cost c;
  const int64_t X = int64_t{in_channels} * arch.resolution * arch.resolution;
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  int64_t res = arch.resolution, ch = s.width;
  c.macs += res * res * ch * in_channels * 9;
  c.params += ch * in_channels * 9 + 2 * ch;
  live(X + 2 * res * res * ch);
  auto cell = [&](const std::vector<std::string>& ops, int64_t c_in, int64_t c_out, int stride) {
    const int64_t out = nn::conv_out(static_cast<int>(res), stride);
    const int64_t node0 = c_in * res * res, node = c_out * out * out;
    for (const auto& n : nodes_of(s.nodes)) {
      const int64_t held = X + node0 + (n.to - 1) * node;
      for (const auto& edge : n.inputs) {
        const size_t e = edge.index;
        Cost op = edge.from == 0 ? op_cost(ops[e], c_in, c_out, stride, res) : op_cost(ops[e], c_out, c_out, 1, out);
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

const Family& family() {
  static const CellFamily f;
  return f;
}

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names = {
      "none",         "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_5x5", "sep_conv_3x3",
      "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3"};
  return names;
}

std::vector<Node> nodes_of(int nodes) {
  std::vector<Node> out;
  size_t index = 0;
  for (int to = 1; to <= nodes; ++to) {
    Node n{to, {}};
    for (int from = 0; from < to; ++from) n.inputs.push_back({index++, from});
    out.push_back(std::move(n));
  }
  return out;
}

std::string notation(const std::vector<std::string>& edge_ops) {
  std::string out;
  size_t e = 0;
  for (int j = 1; e < edge_ops.size(); ++j) {
    if (j > 1) out += "+";
    out += "|";
    for (int i = 0; i < j && e < edge_ops.size(); ++i, ++e) out += edge_ops[e] + "~" + std::to_string(i) + "|";
  }
  return out;
}

int node_count_of_edges(size_t edges) {
  for (int n = 1; n <= 64; ++n)
    if (static_cast<size_t>(n * (n + 1) / 2) == edges) return n;
  return -1;
}

std::vector<std::string> parse_notation(const std::string& text, const std::string& file, const std::string& field) {
  auto bad = [&](const std::string& why) -> SpecError {
    return SpecError(file + ": " + field + ": expected a cell like \"|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|\" (" +
                     why + "), found \"" + text + "\"");
  };
  std::vector<std::string> ops;
  size_t pos = 0;
  for (int j = 1;; ++j) {
    const size_t end = std::min(text.find('+', pos), text.size());
    const std::string group = text.substr(pos, end - pos);
    if (group.size() < 2 || group.front() != '|' || group.back() != '|')
      throw bad("node " + std::to_string(j) + " is not enclosed in |...|");
    size_t p = 1;
    for (int i = 0; i < j; ++i) {
      const size_t bar = group.find('|', p);
      if (bar == std::string::npos) throw bad("node " + std::to_string(j) + " needs an edge from each of nodes 0.." + std::to_string(j - 1));
      const std::string edge = group.substr(p, bar - p);
      const size_t tilde = edge.rfind('~');
      if (tilde == std::string::npos || tilde == 0 || edge.substr(tilde + 1) != std::to_string(i))
        throw bad("node " + std::to_string(j) + "'s edge " + std::to_string(i) + " must read op~" + std::to_string(i));
      ops.push_back(edge.substr(0, tilde));
      p = bar + 1;
    }
    if (p != group.size()) throw bad("node " + std::to_string(j) + " has more than " + std::to_string(j) + " edges");
    if (end == text.size()) break;
    pos = end + 1;
  }
  return ops;
}

void Space::write(spec::json& j) const {
  j["nodes"] = nodes;
  j["ops"] = ops;
  j["width"] = width;
  j["cells"] = cells;
}

void Choices::write(spec::json& j) const { j["cell"] = {{"normal", notation(normal)}, {"reduce", notation(reduce)}}; }

bool Choices::equals(const spec::ArchChoices& other) const {
  const auto* o = dynamic_cast<const Choices*>(&other);
  return o && normal == o->normal && reduce == o->reduce;
}

spec::Arch make_arch(const std::string& space, int resolution, std::vector<std::string> normal,
                     std::vector<std::string> reduce) {
  auto c = std::make_shared<Choices>();
  c->normal = std::move(normal);
  c->reduce = std::move(reduce);
  spec::Arch a;
  a.space = space;
  a.resolution = resolution;
  a.choices = c;
  return a;
}


Cost op_cost(const std::string& op, int64_t c_in, int64_t c_out, int stride, int64_t res) {
  Cost c;
  const int64_t out = nn::conv_out(static_cast<int>(res), stride);
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


}  // namespace nas::families::cell
