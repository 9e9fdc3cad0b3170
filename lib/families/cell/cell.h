#pragma once
// Family cell: NAS-Bench-201 / DARTS cells. A stem (3x3 conv, BN) of `width` channels, then stages
// of `cells[s]` normal cells joined by reduction cells (each halves the spatial size and doubles
// the channels), then BN, ReLU, global average pooling and a linear classifier. A cell has `nodes`
// intermediate nodes after its input node 0; node j sums one op on each edge from nodes 0..j-1 and
// the cell outputs node `nodes`. Every normal cell shares one searched genotype, every reduction
// cell another.
#include <cstdint>
#include <string>
#include <vector>

#include "families/family.h"

namespace nas::families::cell {

const Family& family();

// The operations an edge can choose (NAS-Bench-201 and DARTS names): none, skip_connect,
// nor_conv_{1x1,3x3,5x5}, sep_conv_{3x3,5x5}, dil_conv_{3x3,5x5}, avg_pool_3x3, max_pool_3x3.
const std::vector<std::string>& op_names();

// The space's `resolution` holds exactly one value.
struct Space : spec::SpaceChoices {
  static constexpr const char* kFamily = "cell";
  int nodes = 0;
  std::vector<std::string> ops;  // the edge choices, in the order the file lists them
  int width = 0;                 // the stem's channels
  std::vector<int> cells;        // normal cells per stage
  int num_edges() const { return nodes * (nodes + 1) / 2; }
  void write(spec::json& j) const override;
};

// A child's choices: the op of each edge of the normal and of the reduction cell, edges in the
// order (1<-0), (2<-0), (2<-1), (3<-0), ... (as the cell notation lists them).
struct Choices : spec::ArchChoices {
  static constexpr const char* kFamily = "cell";
  std::vector<std::string> normal, reduce;
  std::string family() const override { return kFamily; }
  void write(spec::json& j) const override;
  bool equals(const spec::ArchChoices& other) const override;
};

inline const Space& space_of(const spec::SearchSpace& s) { return part_of<Space>(s); }
inline const Choices& choices_of(const spec::Arch& a) { return part_of<Choices>(a); }
// An arch of space `space` with these cells.
spec::Arch make_arch(const std::string& space, int resolution, std::vector<std::string> normal,
                     std::vector<std::string> reduce);

// A cell's dataflow, node by node, in the one order every cell op list follows: node `to`
// (1..nodes) reads each node `from` < to (node 0 is the cell's input) through the edge at `index`
// of the op list: (1<-0), (2<-0), (2<-1), (3<-0), ...
struct Edge {
  size_t index;
  int from;
};
struct Node {
  int to;
  std::vector<Edge> inputs;  // by increasing `from`
};
std::vector<Node> nodes_of(int nodes);

// The cell notation of NAS-Bench-201: node j's edges from nodes 0..j-1 as |op~i|, nodes joined by
// '+', e.g. "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|" (2 nodes, 3 edges).
std::string notation(const std::vector<std::string>& edge_ops);
// Parses it; SpecError naming `file` and `field` when malformed. Does not check the op names.
std::vector<std::string> parse_notation(const std::string& text, const std::string& file, const std::string& field);
// Number of intermediate nodes of a cell with `edges` edges (-1 when no count of nodes gives it).
int node_count_of_edges(size_t edges);

// One edge op reading c_in channels at res x res and writing c_out channels at conv_out(res,
// stride), as the cell modules build it: MACs and parameters; peak_activations holds the largest
// pair of consecutive tensors inside the op (its transient memory).
Cost op_cost(const std::string& op, int64_t c_in, int64_t c_out, int stride, int64_t res);

}  // namespace nas::families::cell
