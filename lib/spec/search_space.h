#pragma once
// nas.search_space, family mbconv: a BigNAS/once-for-all chain of inverted-residual stages; family
// mlp: a chain of fully connected hidden layers (elastic depth, per-layer width and activation).
#include <string>
#include <vector>

#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kSearchSpaceKind = "nas.search_space";
inline constexpr int kSearchSpaceVersion = 1;

// Activations the elastic ops implement.
const std::vector<std::string>& activation_names();
// The operations an edge of a cell can choose (family cell; NAS-Bench-201 and DARTS names):
// none, skip_connect, nor_conv_{1x1,3x3,5x5}, sep_conv_{3x3,5x5}, dil_conv_{3x3,5x5},
// avg_pool_3x3, max_pool_3x3.
const std::vector<std::string>& cell_op_names();

struct StageSpec {
  std::vector<int> depth;   // choices for the number of blocks (first d of max(depth) run)
  std::vector<int> width;   // output channels
  std::vector<int> expand;  // expand ratio per block
  std::vector<int> kernel;  // depthwise kernel size per block (odd)
  int stride = 1;           // of the stage's first block
  bool se = false;          // squeeze-excite in every block of the stage
  std::string act = "relu";
};

// One hidden layer of an mlp space: Linear (prefix slice of the widest), BatchNorm, activation.
struct LayerSpec {
  std::vector<int> width;
  std::vector<std::string> act;  // choices, in the order the file lists them
};

struct SearchSpace {
  std::string name;
  std::string family = "mbconv";  // or "mlp" or "cell"
  bool is_mlp() const { return family == "mlp"; }
  bool is_cell() const { return family == "cell"; }
  std::vector<int> resolution;  // input resolution choices (square)
  std::vector<int> stem_width;
  int stem_kernel = 3;
  int stem_stride = 1;
  std::string stem_act = "relu";
  std::vector<StageSpec> stages;
  std::vector<int> head_width;
  std::string head_act = "relu";
  // family mlp: the input (images resized to the one resolution, then flattened; tabular rows are
  // 1x1 images with one channel per feature), then the first `depth` of `layers`, then a linear
  // classifier. `resolution` holds exactly one value.
  std::vector<int> depth;
  std::vector<LayerSpec> layers;  // max(depth) entries
  // family cell: a stem (3x3 conv, BN) of `cell_width` channels, then stages of `cells[s]` normal
  // cells joined by reduction cells (each halves the spatial size and doubles the channels), then
  // BN, ReLU, global average pooling and a linear classifier. A cell has `nodes` intermediate nodes
  // after its input node 0; node j sums one op on each edge from nodes 0..j-1 and the cell outputs
  // node `nodes`. Every normal cell shares one searched genotype, every reduction cell another.
  int nodes = 0;
  std::vector<std::string> ops;  // the edge choices, in the order the file lists them
  int cell_width = 0;
  std::vector<int> cells;  // normal cells per stage
  int num_edges() const { return nodes * (nodes + 1) / 2; }
};

// A cell's dataflow, node by node, in the one order every cell op list follows: node `to`
// (1..nodes) reads each node `from` < to (node 0 is the cell's input) through the edge at `index`
// of the op list: (1<-0), (2<-0), (2<-1), (3<-0), ...
struct CellEdge {
  size_t index;
  int from;
};
struct CellNode {
  int to;
  std::vector<CellEdge> inputs;  // by increasing `from`
};
std::vector<CellNode> cell_nodes(int nodes);

// Parses and validates; `file` names the source in errors. Choice sets are returned sorted.
SearchSpace search_space_from_json(const json& j, const std::string& file);
SearchSpace load_search_space(const std::string& path);
json to_json(const SearchSpace& s);

// Largest choices of a stage, used to size the shared weights.
int max_of(const std::vector<int>& v);
int min_of(const std::vector<int>& v);

}  // namespace nas::spec
