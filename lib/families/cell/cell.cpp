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
std::vector<std::string> ranked_ops(const spec::SearchSpace& s, bool reduce, bool from_input) {
  const int64_t c = s.cell_width, r = s.resolution.front();
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

bool has_none(const spec::SearchSpace& s) { return std::find(s.ops.begin(), s.ops.end(), "none") != s.ops.end(); }

// Calls f(cell, edge, reduce, from_input) for every edge of both cells of a cell arch.
template <typename F>
void for_each_edge(const spec::SearchSpace& s, spec::Arch& a, F f) {
  for (auto* cell : {&a.normal, &a.reduce}) {
    cell->resize(static_cast<size_t>(s.num_edges()));
    for (const auto& node : spec::cell_nodes(s.nodes))
      for (const auto& edge : node.inputs) f(*cell, edge.index, cell == &a.reduce, edge.from == 0);
  }
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
  explicit CellEncoding(const spec::SearchSpace& s) : space_(s) {
    add_sizes("resolution", s.resolution, "resolution");
    for (const char* cell : {"normal", "reduce"})
      for (const auto& node : spec::cell_nodes(s.nodes))
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
    spec::Arch a;
    a.space = space_.name;
    a.resolution = value(g, 0);
    for (size_t e = 0; e < edges(); ++e) {
      a.normal.push_back(space_.ops[static_cast<size_t>(g[1 + e])]);
      a.reduce.push_back(space_.ops[static_cast<size_t>(g[1 + edges() + e])]);
    }
    return a;
  }

  Genotype encode(const spec::Arch& a) const override {
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
  spec::SearchSpace space_;
};

class CellFamily : public Family {
 public:
  std::string name() const override { return "cell"; }
  bool holds(const spec::Arch& a) const override { return !a.normal.empty(); }
  std::string choices_key() const override { return "cell"; }
  std::string choices_description() const override { return "the normal and reduction cells of a cell child"; }

  void validate(const spec::Arch& a, const spec::SearchSpace& s, const std::string& file) const override {
    for (const auto* cell : {&a.normal, &a.reduce}) {
      const std::string p = std::string("cell.") + (cell == &a.normal ? "normal" : "reduce");
      NAS_CHECK(cell->size() == static_cast<size_t>(s.num_edges()), SpecError,
                file << ": " << p << ": expected a cell of " << s.nodes << " nodes (" << s.num_edges()
                     << " edges), found " << cell->size() << " edges");
      for (size_t e = 0; e < cell->size(); ++e) check_name(file, p + ": edge " + std::to_string(e), (*cell)[e], s.ops);
    }
  }

  std::string summary(const spec::Arch& a) const override {
    return "normal " + spec::cell_notation(a.normal) + " reduce " + spec::cell_notation(a.reduce);
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
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool reduce, bool from_input) {
      const std::vector<std::string>& choices = ranked ? (*ranked)(reduce, from_input) : s.ops;
      cell[e] = choices[pick(choices.size())];
    });
  }

  // Ops are unordered: an edge that changes takes any other op.
  bool mutate(const spec::SearchSpace& s, Rng& rng, double prob, spec::Arch& a) const override {
    if (s.ops.size() < 2) return false;
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool, bool) {
      if (rng.uniform() >= prob) return;
      const size_t cur = static_cast<size_t>(std::find(s.ops.begin(), s.ops.end(), cell[e]) - s.ops.begin()) % s.ops.size();
      cell[e] = s.ops[(cur + 1 + rng.below(s.ops.size() - 1)) % s.ops.size()];
    });
    return true;
  }

  Cost cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const override;

  std::unique_ptr<FamilyEncoding> encoding(const spec::SearchSpace& s) const override {
    return std::make_unique<CellEncoding>(s);
  }
};

// nn::CellNet's eager forward: the network input is held throughout; a cell holds its input node
// and every node it has computed; a node being summed holds its partial sum, an op's input (after
// ReLU) and output.
Cost CellFamily::cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const {
  Cost c;
  const int64_t X = int64_t{in_channels} * a.resolution * a.resolution;
  auto live = [&](int64_t values) { c.peak_activations = std::max(c.peak_activations, values); };
  int64_t res = a.resolution, ch = s.cell_width;
  c.macs += res * res * ch * in_channels * 9;
  c.params += ch * in_channels * 9 + 2 * ch;
  live(X + 2 * res * res * ch);
  auto cell = [&](const std::vector<std::string>& ops, int64_t c_in, int64_t c_out, int stride) {
    const int64_t out = nn::conv_out(static_cast<int>(res), stride);
    const int64_t node0 = c_in * res * res, node = c_out * out * out;
    for (const auto& n : spec::cell_nodes(s.nodes)) {
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
