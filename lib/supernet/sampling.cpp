#include "supernet/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "supernet/cost.h"

namespace nas::supernet {
namespace {
int at_level(const std::vector<int>& set, double level) {
  size_t i = static_cast<size_t>(std::lround(level * static_cast<double>(set.size() - 1)));
  return set[std::min(i, set.size() - 1)];
}

// One step up or down the (sorted) set from v; stays when the set has one element.
int neighbour(const std::vector<int>& set, int v, Rng& rng) {
  if (set.size() < 2) return v;
  auto it = std::find(set.begin(), set.end(), v);
  size_t i = it == set.end() ? 0 : static_cast<size_t>(it - set.begin());
  if (i == 0) return set[1];
  if (i == set.size() - 1) return set[i - 1];
  return rng.below(2) ? set[i + 1] : set[i - 1];
}
// A cell space's non-none ops for one edge, cheapest first (MACs, then parameters, then the order
// the space lists them), costed where the edge first occurs: a normal cell of the first stage, or
// the first reduction cell (its edges from the input node have stride 2 and double the channels).
std::vector<std::string> ranked_ops(const spec::SearchSpace& s, bool reduce, bool from_input) {
  const int64_t c = s.cell_width, r = s.resolution.front();
  std::vector<std::pair<Cost, size_t>> costed;
  for (size_t k = 0; k < s.ops.size(); ++k) {
    if (s.ops[k] == "none") continue;
    Cost cost = !reduce ? cell_op_cost(s.ops[k], c, c, 1, r)
                : from_input ? cell_op_cost(s.ops[k], c, 2 * c, 2, r)
                             : cell_op_cost(s.ops[k], 2 * c, 2 * c, 1, conv_out(static_cast<int>(r), 2));
    costed.push_back({cost, k});
  }
  std::stable_sort(costed.begin(), costed.end(), [](const auto& x, const auto& y) {
    return x.first.macs != y.first.macs ? x.first.macs < y.first.macs : x.first.params < y.first.params;
  });
  std::vector<std::string> out;
  for (const auto& c2 : costed) out.push_back(s.ops[c2.second]);
  return out;
}

// Calls f(cell, edge, from_input) for every edge of both cells of a cell arch.
template <typename F>
void for_each_edge(const spec::SearchSpace& s, spec::Arch& a, F f) {
  for (auto* cell : {&a.normal, &a.reduce}) {
    cell->resize(static_cast<size_t>(s.num_edges()));
    for (const auto& node : spec::cell_nodes(s.nodes))
      for (const auto& edge : node.inputs) f(*cell, edge.index, cell == &a.reduce, edge.from == 0);
  }
}
// A cell space's ops by cost rank for the three kinds of edge (normal, reduction from the input
// node, reduction between inner nodes), with none first when `with_none` and the space has it; empty
// for other families.
struct RankedOps {
  RankedOps(const spec::SearchSpace& s, bool with_none) {
    if (!s.is_cell()) return;
    const bool none = with_none && std::find(s.ops.begin(), s.ops.end(), "none") != s.ops.end();
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

}  // namespace

spec::Arch arch_at_levels(const spec::SearchSpace& s, const Levels& l) {
  spec::Arch a;
  a.space = s.name;
  a.resolution = at_level(s.resolution, l.resolution);
  if (s.is_cell()) {  // every edge: the op at that fraction of its cost ranking (none excluded)
    const RankedOps kinds(s, /*with_none=*/false);
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool reduce, bool from_input) {
      const auto& ranked = kinds(reduce, from_input);
      cell[e] = ranked[std::min(ranked.size() - 1, static_cast<size_t>(std::lround(l.width * static_cast<double>(ranked.size() - 1))))];
    });
    return a;
  }
  if (s.is_mlp()) {  // the activation does not change the size: each layer's first-listed one
    const int depth = at_level(s.depth, l.depth);
    for (int i = 0; i < depth; ++i)
      a.layers.push_back({at_level(s.layers[static_cast<size_t>(i)].width, l.width), s.layers[static_cast<size_t>(i)].act.front()});
    return a;
  }
  a.stem_width = at_level(s.stem_width, l.width);
  a.head_width = at_level(s.head_width, l.width);
  for (const auto& st : s.stages) {
    spec::StageArch sa;
    sa.depth = at_level(st.depth, l.depth);
    sa.width = at_level(st.width, l.width);
    sa.blocks.assign(sa.depth, spec::BlockArch{at_level(st.expand, l.expand), at_level(st.kernel, l.kernel)});
    a.stages.push_back(sa);
  }
  return a;
}

spec::Arch max_arch(const spec::SearchSpace& s) { return arch_at_levels(s, Levels{1, 1, 1, 1, 1}); }
spec::Arch min_arch(const spec::SearchSpace& s) { return arch_at_levels(s, Levels{0, 0, 0, 0, 0}); }

spec::Arch cheapest_arch(const spec::SearchSpace& s) {
  spec::Arch a = min_arch(s);
  if (s.is_cell() && std::find(s.ops.begin(), s.ops.end(), "none") != s.ops.end())
    for_each_edge(s, a, [](std::vector<std::string>& cell, size_t e, bool, bool) { cell[e] = "none"; });
  return a;
}

namespace {

// A child whose ordered decisions each take the choice at index pick(n) of their n (sorted)
// choices; a cell edge's op comes from ops(reduce, from_input), an mlp activation uniformly.
template <typename Pick, typename Ops>
spec::Arch draw_arch(const spec::SearchSpace& s, Rng& rng, Pick pick, Ops ops) {
  auto choose = [&](const std::vector<int>& set) { return set[pick(set.size())]; };
  spec::Arch a;
  a.space = s.name;
  a.resolution = choose(s.resolution);
  if (s.is_cell()) {
    for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool reduce, bool from_input) {
      const std::vector<std::string>& choices = ops(reduce, from_input);
      cell[e] = choices[pick(choices.size())];
    });
    return a;
  }
  if (s.is_mlp()) {
    const int depth = choose(s.depth);
    for (int i = 0; i < depth; ++i) {
      const auto& ls = s.layers[static_cast<size_t>(i)];
      const int w = choose(ls.width);
      a.layers.push_back({w, ls.act[rng.below(ls.act.size())]});
    }
    return a;
  }
  a.stem_width = choose(s.stem_width);
  for (const auto& st : s.stages) {
    spec::StageArch sa;
    sa.depth = choose(st.depth);
    sa.width = choose(st.width);
    for (int b = 0; b < sa.depth; ++b) {
      int e = choose(st.expand);
      int k = choose(st.kernel);
      sa.blocks.push_back({e, k});
    }
    a.stages.push_back(sa);
  }
  a.head_width = choose(s.head_width);
  return a;
}

// A child drawn with each ordered decision tilted towards its larger (tilt > 0) or smaller choices:
// choice j of n with probability proportional to exp(tilt * j / (n - 1)); cell ops by cost rank.
spec::Arch tilted_arch(const spec::SearchSpace& s, Rng& rng, double tilt, const RankedOps& ranked) {
  auto pick = [&](size_t n) {
    if (n < 2) return size_t{0};
    std::vector<double> weight(n);
    for (size_t j = 0; j < n; ++j) weight[j] = std::exp(tilt * static_cast<double>(j) / static_cast<double>(n - 1));
    double u = rng.uniform() * std::accumulate(weight.begin(), weight.end(), 0.0);
    for (size_t j = 0; j < n; ++j)
      if ((u -= weight[j]) < 0) return j;
    return n - 1;
  };
  return draw_arch(s, rng, pick, ranked);
}

}  // namespace

spec::Arch random_arch(const spec::SearchSpace& s, Rng& rng) {
  return draw_arch(
      s, rng, [&](size_t n) { return static_cast<size_t>(rng.below(n)); },
      [&](bool, bool) -> const std::vector<std::string>& { return s.ops; });
}

spec::Arch stratified_arch(const spec::SearchSpace& s, Rng& rng, int bins, double low, double high,
                           const std::function<double(const spec::Arch&)>& cost) {
  constexpr double kTiltStep = 0.25, kMaxTilt = 30;
  const double width = (high - low) / std::max(1, bins);
  const double bin = static_cast<double>(rng.below(static_cast<uint64_t>(std::max(1, bins))));
  const double from = low + width * bin, to = bin + 1 >= bins ? high : from + width;
  const RankedOps ranked(s, /*with_none=*/true);
  spec::Arch closest;
  double closest_distance = INFINITY, tilt = 0;
  for (int i = 0; i < kStratifiedTries; ++i) {
    spec::Arch a = tilted_arch(s, rng, tilt, ranked);
    const double c = cost(a);
    const double distance = c < from ? from - c : c > to ? c - to : 0.0;
    if (distance == 0.0) return a;
    if (distance < closest_distance) {
      closest_distance = distance;
      closest = std::move(a);
    }
    tilt = std::clamp(tilt + (c < from ? kTiltStep : -kTiltStep), -kMaxTilt, kMaxTilt);
  }
  return closest;
}

spec::Arch mutate_arch(const spec::Arch& in, const spec::SearchSpace& s, Rng& rng, double prob) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    spec::Arch a = in;
    auto maybe = [&](const std::vector<int>& set, int& v) {
      if (rng.uniform() < prob) v = neighbour(set, v, rng);
    };
    maybe(s.resolution, a.resolution);
    if (s.is_cell()) {  // ops are unordered: an edge that changes takes any other op
      if (s.ops.size() < 2) return in;
      for_each_edge(s, a, [&](std::vector<std::string>& cell, size_t e, bool, bool) {
        if (rng.uniform() >= prob) return;
        size_t cur = static_cast<size_t>(std::find(s.ops.begin(), s.ops.end(), cell[e]) - s.ops.begin()) % s.ops.size();
        cell[e] = s.ops[(cur + 1 + rng.below(s.ops.size() - 1)) % s.ops.size()];
      });
      if (a != in) return a;
      continue;
    }
    if (s.is_mlp()) {
      int d = static_cast<int>(a.layers.size());
      maybe(s.depth, d);
      while (static_cast<int>(a.layers.size()) < d) {  // a new layer: its set's smallest width, first act
        const auto& ls = s.layers[a.layers.size()];
        a.layers.push_back({ls.width.front(), ls.act.front()});
      }
      a.layers.resize(static_cast<size_t>(d));
      for (size_t i = 0; i < a.layers.size(); ++i) {
        const auto& ls = s.layers[i];
        maybe(ls.width, a.layers[i].width);
        if (ls.act.size() > 1 && rng.uniform() < prob) {  // activations are unordered: any other one
          auto it = std::find(ls.act.begin(), ls.act.end(), a.layers[i].act);
          size_t cur = it == ls.act.end() ? 0 : static_cast<size_t>(it - ls.act.begin());
          a.layers[i].act = ls.act[(cur + 1 + rng.below(ls.act.size() - 1)) % ls.act.size()];
        }
      }
      if (a != in) return a;
      continue;
    }
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
    if (a != in) return a;
  }
  return in;  // a space with a single child
}

}  // namespace nas::supernet
