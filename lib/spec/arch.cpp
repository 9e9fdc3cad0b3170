#include "spec/arch.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/hash.h"

namespace nas::spec {

std::string cell_notation(const std::vector<std::string>& edge_ops) {
  std::string out;
  size_t e = 0;
  for (int j = 1; e < edge_ops.size(); ++j) {
    if (j > 1) out += "+";
    out += "|";
    for (int i = 0; i < j && e < edge_ops.size(); ++i, ++e) out += edge_ops[e] + "~" + std::to_string(i) + "|";
  }
  return out;
}

int cell_nodes_of(size_t edges) {
  for (int n = 1; n <= 64; ++n)
    if (static_cast<size_t>(n * (n + 1) / 2) == edges) return n;
  return -1;
}

std::vector<std::string> parse_cell_notation(const std::string& text, const std::string& file, const std::string& field) {
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

json to_json(const Arch& a) {
  json j;
  j["kind"] = kArchKind;
  j["schema_version"] = kArchVersion;
  j["space"] = a.space;
  j["resolution"] = a.resolution;
  if (a.is_mlp()) {
    j["layers"] = json::array();
    for (const auto& l : a.layers) j["layers"].push_back({{"width", l.width}, {"act", l.act}});
    return j;
  }
  if (a.is_cell()) {
    j["cell"] = {{"normal", cell_notation(a.normal)}, {"reduce", cell_notation(a.reduce)}};
    return j;
  }
  j["stem_width"] = a.stem_width;
  j["head_width"] = a.head_width;
  j["stages"] = json::array();
  for (const auto& st : a.stages) {
    json blocks = json::array();
    for (const auto& b : st.blocks) blocks.push_back({{"expand", b.expand}, {"kernel", b.kernel}});
    j["stages"].push_back({{"depth", st.depth}, {"width", st.width}, {"blocks", blocks}});
  }
  return j;
}

Arch arch_from_json(const json& j, const std::string& file) {
  Obj o(j, file, "");
  check_header(o, kArchKind, kArchVersion);
  Arch a;
  a.space = o.string("space");
  a.resolution = static_cast<int>(o.integer("resolution", 1, 1 << 16));
  if (o.has("layers")) {  // family mlp
    auto layers = o.objects("layers");
    if (layers.empty()) o.fail("layers", "a non-empty list of hidden layers", o.raw("layers"));
    for (auto& lo : layers) {
      LayerArch l;
      l.width = static_cast<int>(lo.integer("width", 1, 1 << 16));
      l.act = lo.string("act");
      lo.finish();
      a.layers.push_back(l);
    }
    o.finish();
    return a;
  }
  if (o.has("cell")) {  // family cell
    Obj c = o.object("cell");
    a.normal = parse_cell_notation(c.string("normal"), file, c.where("normal"));
    a.reduce = parse_cell_notation(c.string("reduce"), file, c.where("reduce"));
    NAS_CHECK(a.normal.size() == a.reduce.size(), SpecError,
              file << ": " << c.where("reduce") << ": expected as many nodes as the normal cell ("
                   << cell_nodes_of(a.normal.size()) << "), found " << cell_nodes_of(a.reduce.size()));
    c.finish();
    o.finish();
    return a;
  }
  a.stem_width = static_cast<int>(o.integer("stem_width", 1, 1 << 16));
  a.head_width = static_cast<int>(o.integer("head_width", 1, 1 << 16));
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
    a.stages.push_back(st);
  }
  o.finish();
  return a;
}

Arch load_arch(const std::string& path) {
  json j = load_document(path);
  std::string file = path == "-" ? "<stdin>" : path;
  // A nas.search result stands for its best candidate, so `nas-slice --arch search.json` works.
  if (j.is_object() && j.contains("kind") && j["kind"] == "nas.search") {
    NAS_CHECK(j.contains("best") && j["best"].is_object() && j["best"].contains("arch"), SpecError,
              file << ": best: expected the best candidate with an arch, found none (no feasible candidate?)");
    return arch_from_json(j["best"]["arch"], file + " (best.arch)");
  }
  return arch_from_json(j, file);
}

std::string json_hash(const json& j) { return hex64(fnv1a64(compact_dump(j))); }

std::string arch_hash(const Arch& a) { return json_hash(to_json(a)); }

}  // namespace nas::spec
