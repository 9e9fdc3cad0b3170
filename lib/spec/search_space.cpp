#include "spec/search_space.h"

#include <algorithm>

#include "core/error.h"

namespace nas::spec {

std::vector<CellNode> cell_nodes(int nodes) {
  std::vector<CellNode> out;
  size_t index = 0;
  for (int to = 1; to <= nodes; ++to) {
    CellNode n{to, {}};
    for (int from = 0; from < to; ++from) n.inputs.push_back({index++, from});
    out.push_back(std::move(n));
  }
  return out;
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {"relu", "relu6", "hswish", "swish", "gelu", "tanh"};
  return names;
}

const std::vector<std::string>& cell_op_names() {
  static const std::vector<std::string> names = {
      "none",         "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_5x5", "sep_conv_3x3",
      "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3"};
  return names;
}

int max_of(const std::vector<int>& v) { return *std::max_element(v.begin(), v.end()); }
int min_of(const std::vector<int>& v) { return *std::min_element(v.begin(), v.end()); }

namespace {
// Absurd sizes are refused before anything is allocated.
constexpr int kMaxWidth = 4096;
constexpr int kMaxDepth = 32;
constexpr int kMaxStages = 16;
constexpr int kMaxResolution = 1024;

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int> odd_set(Obj& o, const std::string& key, int lo, int hi) {
  auto v = sorted(o.int_set(key, lo, hi));
  for (int k : v)
    if (k % 2 == 0) o.fail(key, "odd kernel sizes", json(v));
  return v;
}
}  // namespace

namespace {
// A non-empty list of distinct activation names (one name alone is a one-element list).
std::vector<std::string> act_set(Obj& o, const std::string& key) {
  json v = o.raw(key);
  if (v.is_string()) v = json::array({v});
  std::string expected = "a non-empty list of distinct activations from [";
  for (size_t i = 0; i < activation_names().size(); ++i) expected += (i ? ", " : "") + activation_names()[i];
  expected += "]";
  if (!v.is_array() || v.empty()) o.fail(key, expected, o.raw(key));
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) o.fail(key, expected, o.raw(key));
    std::string a = e.get<std::string>();
    if (std::find(activation_names().begin(), activation_names().end(), a) == activation_names().end() ||
        std::find(out.begin(), out.end(), a) != out.end())
      o.fail(key, expected, o.raw(key));
    out.push_back(a);
  }
  return out;
}

SearchSpace mlp_space_from(Obj& o, SearchSpace s) {
  s.resolution = sorted(o.int_set("resolution", 1, kMaxResolution));
  if (s.resolution.size() != 1)
    o.fail("resolution", "exactly one input resolution (the first layer's width is fixed by it)", o.raw("resolution"));
  s.depth = sorted(o.int_set("depth", 1, kMaxDepth));
  auto layers = o.objects("layers");
  const size_t max_depth = static_cast<size_t>(max_of(s.depth));
  if (layers.size() != 1 && layers.size() != max_depth)
    o.fail("layers",
           "one layer spec for every layer, or " + std::to_string(max_depth) + " (one per layer up to max(depth))",
           o.raw("layers"));
  for (auto& lo : layers) {
    LayerSpec l;
    l.width = sorted(lo.int_set("width", 1, 1 << 16));
    l.act = act_set(lo, "act");
    lo.finish();
    s.layers.push_back(l);
  }
  while (s.layers.size() < max_depth) s.layers.push_back(s.layers.front());
  o.finish();
  return s;
}

SearchSpace cell_space_from(Obj& o, SearchSpace s) {
  s.resolution = sorted(o.int_set("resolution", 4, kMaxResolution));
  if (s.resolution.size() != 1) o.fail("resolution", "exactly one input resolution", o.raw("resolution"));
  s.nodes = static_cast<int>(o.integer("nodes", 1, 8));
  {
    json v = o.raw("ops");
    std::string expected = "a non-empty list of distinct ops from [";
    for (size_t i = 0; i < cell_op_names().size(); ++i) expected += (i ? ", " : "") + cell_op_names()[i];
    expected += "], not only none";
    if (!v.is_array() || v.empty()) o.fail("ops", expected, v);
    for (const auto& e : v) {
      if (!e.is_string()) o.fail("ops", expected, v);
      std::string op = e.get<std::string>();
      if (std::find(cell_op_names().begin(), cell_op_names().end(), op) == cell_op_names().end() ||
          std::find(s.ops.begin(), s.ops.end(), op) != s.ops.end())
        o.fail("ops", expected, v);
      s.ops.push_back(op);
    }
    if (s.ops.size() == 1 && s.ops.front() == "none") o.fail("ops", expected, v);
  }
  s.cell_width = static_cast<int>(o.integer("width", 1, kMaxWidth));
  {
    json v = o.raw("cells");
    const std::string expected = "a list of 1 to " + std::to_string(kMaxStages) +
                                 " counts of normal cells per stage (each 0 to " + std::to_string(kMaxDepth) + ")";
    if (!v.is_array() || v.empty() || v.size() > static_cast<size_t>(kMaxStages)) o.fail("cells", expected, v);
    for (const auto& e : v) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > kMaxDepth) o.fail("cells", expected, v);
      s.cells.push_back(e.get<int>());
    }
  }
  o.finish();
  // Channels double at each reduction cell: refused before anything is allocated when too wide.
  const int64_t widest = int64_t{s.cell_width} << (s.cells.size() - 1);
  NAS_CHECK(widest <= kMaxWidth, SpecError,
            o.file() << ": width: expected at most " << kMaxWidth << " channels in the last stage (width doubles at each of "
                     << s.cells.size() - 1 << " reduction cells), found " << widest);
  return s;
}
}  // namespace

SearchSpace search_space_from_json(const json& j, const std::string& file) {
  Obj o(j, file, "");
  check_header(o, kSearchSpaceKind, kSearchSpaceVersion);
  SearchSpace s;
  s.name = o.string("name");
  s.family = o.one_of("family", {"mbconv", "mlp", "cell"});
  if (s.is_mlp()) return mlp_space_from(o, s);
  if (s.is_cell()) return cell_space_from(o, s);
  s.resolution = sorted(o.int_set("resolution", 8, kMaxResolution));
  {
    Obj st = o.object("stem");
    s.stem_width = sorted(st.int_set("width", 1, kMaxWidth));
    s.stem_kernel = static_cast<int>(st.integer_or("kernel", 3, 1, 11));
    if (s.stem_kernel % 2 == 0) st.fail("kernel", "an odd kernel size", s.stem_kernel);
    s.stem_stride = static_cast<int>(st.integer_or("stride", 1, 1, 4));
    s.stem_act = st.one_of_or("act", activation_names(), "relu");
    st.finish();
  }
  auto stages = o.objects("stages");
  if (stages.empty() || stages.size() > static_cast<size_t>(kMaxStages))
    o.fail("stages", "a list of 1 to " + std::to_string(kMaxStages) + " stages", o.raw("stages"));
  for (auto& so : stages) {
    StageSpec st;
    st.depth = sorted(so.int_set("depth", 1, kMaxDepth));
    st.width = sorted(so.int_set("width", 1, kMaxWidth));
    st.expand = sorted(so.int_set("expand", 1, 16));
    st.kernel = odd_set(so, "kernel", 1, 11);
    st.stride = static_cast<int>(so.integer_or("stride", 1, 1, 4));
    st.se = so.boolean_or("se", false);
    st.act = so.one_of_or("act", activation_names(), "relu");
    so.finish();
    s.stages.push_back(st);
  }
  {
    Obj h = o.object("head");
    s.head_width = sorted(h.int_set("width", 1, kMaxWidth));
    s.head_act = h.one_of_or("act", activation_names(), "relu");
    h.finish();
  }
  o.finish();
  // Every stride must leave at least a 1x1 feature map at the smallest resolution.
  int res = min_of(s.resolution);
  int r = (res + s.stem_stride - 1) / s.stem_stride;
  for (const auto& st : s.stages) r = (r + st.stride - 1) / st.stride;
  NAS_CHECK(r >= 1, SpecError, file << ": stages: strides leave no spatial extent at resolution " << res);
  return s;
}

SearchSpace load_search_space(const std::string& path) {
  return search_space_from_json(load_document(path), path == "-" ? "<stdin>" : path);
}

json to_json(const SearchSpace& s) {
  json j;
  j["kind"] = kSearchSpaceKind;
  j["schema_version"] = kSearchSpaceVersion;
  j["name"] = s.name;
  j["family"] = s.family;
  j["resolution"] = s.resolution;
  if (s.is_mlp()) {
    j["depth"] = s.depth;
    j["layers"] = json::array();
    for (const auto& l : s.layers) j["layers"].push_back({{"width", l.width}, {"act", l.act}});
    return j;
  }
  if (s.is_cell()) {
    j["nodes"] = s.nodes;
    j["ops"] = s.ops;
    j["width"] = s.cell_width;
    j["cells"] = s.cells;
    return j;
  }
  j["stem"] = {{"width", s.stem_width}, {"kernel", s.stem_kernel}, {"stride", s.stem_stride},
               {"act", s.stem_act}};
  j["stages"] = json::array();
  for (const auto& st : s.stages) {
    j["stages"].push_back({{"depth", st.depth},
                           {"width", st.width},
                           {"expand", st.expand},
                           {"kernel", st.kernel},
                           {"stride", st.stride},
                           {"se", st.se},
                           {"act", st.act}});
  }
  j["head"] = {{"width", s.head_width}, {"act", s.head_act}};
  return j;
}

}  // namespace nas::spec
