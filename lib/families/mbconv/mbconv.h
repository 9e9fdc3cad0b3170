#pragma once
// Family mbconv: a BigNAS/once-for-all chain of inverted-residual stages (elastic resolution,
// stem and head width, and per stage depth, width, and per block expand ratio and kernel size).
#include <string>
#include <vector>

#include "families/family.h"

namespace nas::families::mbconv {

const Family& family();
// Its latency-table operators (mbconv/latency.cpp).
const LatencyOps& latency_ops();

struct StageSpec {
  std::vector<int> depth;   // choices for the number of blocks (first d of max(depth) run)
  std::vector<int> width;   // output channels
  std::vector<int> expand;  // expand ratio per block
  std::vector<int> kernel;  // depthwise kernel size per block (odd)
  int stride = 1;           // of the stage's first block
  bool se = false;          // squeeze-excite in every block of the stage
  std::string act = "relu";
};

// The space: stem (conv, BN, activation), stages, head (1x1 conv, BN, activation, pooling,
// classifier).
struct Space : spec::SpaceChoices {
  static constexpr const char* kFamily = "mbconv";
  std::vector<int> stem_width;
  int stem_kernel = 3;
  int stem_stride = 1;
  std::string stem_act = "relu";
  std::vector<StageSpec> stages;
  std::vector<int> head_width;
  std::string head_act = "relu";
  void write(spec::json& j) const override;
};

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

// A child's choices. nas.arch lists one entry per active block (`blocks` has `depth` entries).
struct Choices : spec::ArchChoices {
  static constexpr const char* kFamily = "mbconv";
  int stem_width = 0;
  std::vector<StageArch> stages;
  int head_width = 0;
  std::string family() const override { return kFamily; }
  void write(spec::json& j) const override;
  bool equals(const spec::ArchChoices& other) const override;
};

inline const Space& space_of(const spec::SearchSpace& s) { return part_of<Space>(s); }
inline const Choices& choices_of(const spec::Arch& a) { return part_of<Choices>(a); }

}  // namespace nas::families::mbconv
