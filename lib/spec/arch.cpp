#include "spec/arch.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/hash.h"

namespace nas::spec {

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

namespace {
void check_choice(const std::string& file, const std::string& path, int v, const std::vector<int>& set) {
  if (std::find(set.begin(), set.end(), v) != set.end()) return;
  std::ostringstream exp;
  exp << "one of [";
  for (size_t i = 0; i < set.size(); ++i) exp << (i ? ", " : "") << set[i];
  exp << "]";
  throw SpecError(file + ": " + path + ": expected " + exp.str() + " (outside the search space), found " +
                  std::to_string(v));
}
}  // namespace

void validate_arch(const Arch& a, const SearchSpace& s, const std::string& file) {
  NAS_CHECK(a.space == s.name, SpecError,
            file << ": space: expected \"" << s.name << "\" (the supernet's search space), found \"" << a.space
                 << "\"");
  if (s.is_mlp() || a.is_mlp()) {
    NAS_CHECK(s.is_mlp() && a.is_mlp(), SpecError,
              file << ": " << (s.is_mlp() ? "layers: expected the hidden layers of an mlp child, found none"
                                          : "layers: expected stem, stages and head (an mbconv child), found layers"));
    check_choice(file, "resolution", a.resolution, s.resolution);
    check_choice(file, "depth", static_cast<int>(a.layers.size()), s.depth);
    for (size_t i = 0; i < a.layers.size(); ++i) {
      const std::string p = "layers[" + std::to_string(i) + "]";
      check_choice(file, p + ".width", a.layers[i].width, s.layers[i].width);
      const auto& acts = s.layers[i].act;
      if (std::find(acts.begin(), acts.end(), a.layers[i].act) == acts.end()) {
        std::string exp;
        for (size_t k = 0; k < acts.size(); ++k) exp += (k ? ", " : "") + acts[k];
        throw SpecError(file + ": " + p + ".act: expected one of [" + exp + "] (outside the search space), found \"" +
                        a.layers[i].act + "\"");
      }
    }
    return;
  }
  check_choice(file, "resolution", a.resolution, s.resolution);
  check_choice(file, "stem_width", a.stem_width, s.stem_width);
  check_choice(file, "head_width", a.head_width, s.head_width);
  NAS_CHECK(a.stages.size() == s.stages.size(), SpecError,
            file << ": stages: expected " << s.stages.size() << " stages, found " << a.stages.size());
  for (size_t i = 0; i < a.stages.size(); ++i) {
    std::string p = "stages[" + std::to_string(i) + "]";
    const auto& st = a.stages[i];
    const auto& ss = s.stages[i];
    check_choice(file, p + ".depth", st.depth, ss.depth);
    check_choice(file, p + ".width", st.width, ss.width);
    NAS_CHECK(st.blocks.size() == static_cast<size_t>(st.depth), SpecError,
              file << ": " << p << ".blocks: expected " << st.depth << " blocks, found " << st.blocks.size());
    for (size_t b = 0; b < st.blocks.size(); ++b) {
      std::string bp = p + ".blocks[" + std::to_string(b) + "]";
      check_choice(file, bp + ".expand", st.blocks[b].expand, ss.expand);
      check_choice(file, bp + ".kernel", st.blocks[b].kernel, ss.kernel);
    }
  }
}

std::string json_hash(const json& j) { return hex64(fnv1a64(compact_dump(j))); }

std::string arch_hash(const Arch& a) { return json_hash(to_json(a)); }

std::string arch_summary(const Arch& a) {
  std::ostringstream os;
  if (a.is_mlp()) {
    os << "r" << a.resolution << " [";
    for (size_t i = 0; i < a.layers.size(); ++i) os << (i ? ", " : "") << a.layers[i].width << " " << a.layers[i].act;
    os << "]";
    return os.str();
  }
  os << "r" << a.resolution << " s" << a.stem_width;
  for (const auto& st : a.stages) {
    os << " [w" << st.width << " ";
    for (size_t b = 0; b < st.blocks.size(); ++b)
      os << (b ? "," : "") << "e" << st.blocks[b].expand << "k" << st.blocks[b].kernel;
    os << "]";
  }
  os << " h" << a.head_width;
  return os.str();
}

}  // namespace nas::spec
