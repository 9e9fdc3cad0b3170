#pragma once
// nas.arch: one concrete child of a search space, with a canonical form and a stable hash.
#include <string>
#include <vector>

#include "spec/document.h"
#include "spec/search_space.h"

namespace nas::spec {

inline constexpr const char* kArchKind = "nas.arch";
inline constexpr int kArchVersion = 1;

struct BlockArch {
  int expand = 1;
  int kernel = 3;
  bool operator==(const BlockArch& o) const { return expand == o.expand && kernel == o.kernel; }
};

struct StageArch {
  int depth = 1;
  int width = 1;
  std::vector<BlockArch> blocks;  // exactly `depth` entries
  bool operator==(const StageArch& o) const {
    return depth == o.depth && width == o.width && blocks == o.blocks;
  }
};

// A hidden layer of an mlp child.
struct LayerArch {
  int width = 1;
  std::string act = "relu";
  bool operator==(const LayerArch& o) const { return width == o.width && act == o.act; }
};

struct Arch {
  std::string space;  // name of the search space it belongs to
  int resolution = 0;
  // family mbconv
  int stem_width = 0;
  std::vector<StageArch> stages;
  int head_width = 0;
  // family mlp: the active hidden layers (depth = layers.size() >= 1); no stem, stages or head
  std::vector<LayerArch> layers;
  bool is_mlp() const { return !layers.empty(); }
  // family cell: the op of each edge of the normal and of the reduction cell, edges in the order
  // (1<-0), (2<-0), (2<-1), (3<-0), ... (as the cell notation lists them)
  std::vector<std::string> normal, reduce;
  bool is_cell() const { return !normal.empty(); }
  bool operator==(const Arch& o) const {
    return space == o.space && resolution == o.resolution && stem_width == o.stem_width &&
           stages == o.stages && head_width == o.head_width && layers == o.layers && normal == o.normal &&
           reduce == o.reduce;
  }
  bool operator!=(const Arch& o) const { return !(*this == o); }
};

// The cell notation of NAS-Bench-201: node j's edges from nodes 0..j-1 as |op~i|, nodes joined by
// '+', e.g. "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|" (2 nodes, 3 edges).
std::string cell_notation(const std::vector<std::string>& edge_ops);
// Parses it; SpecError naming `file` and `field` when malformed. Does not check the op names.
std::vector<std::string> parse_cell_notation(const std::string& text, const std::string& file, const std::string& field);
// Number of intermediate nodes of a cell with `edges` edges (-1 when no count of nodes gives it).
int cell_nodes_of(size_t edges);

// Canonical JSON of an arch (kind, schema_version and every choice; keys sorted).
json to_json(const Arch& a);
// Parses the structure; does not check membership in a space (see families::validate_arch).
Arch arch_from_json(const json& j, const std::string& file);
// Reads a nas.arch file, or the best candidate of a nas.search file.
Arch load_arch(const std::string& path);
// Stable 16-hex-digit hash of a document's compact JSON: the key of archs, generic children and
// spaces alike.
std::string json_hash(const json& j);
// Stable 16-hex-digit hash of the canonical form (json_hash of to_json(a)).
std::string arch_hash(const Arch& a);

}  // namespace nas::spec
