#pragma once
// Family resnet: an elastic bottleneck ResNet in the manner of once-for-all's OFAResNets. A stem
// (3x3 conv, BN, ReLU), then stages of bottleneck blocks (1x1 conv to the block's middle width, BN,
// ReLU; 3x3 conv with the stage's stride on its first block, BN, ReLU; 1x1 conv to the stage's
// width, BN; plus the input, through a strided 1x1 conv and BN where the shape changes; ReLU),
// then global average pooling and a linear classifier. Elastic: the input resolution, one width
// multiplier for the stem and every stage, each stage's depth (its first d blocks run) and each
// block's expand ratio (middle width = stage width x ratio). Multipliers and ratios are written as
// percents so that every choice is an integer.
#include <string>
#include <vector>

#include "families/family.h"

namespace nas::families::resnet {

const Family& family();

struct StageSpec {
  int width = 1;            // output channels at width multiplier 100
  std::vector<int> depth;   // choices for the number of blocks
  std::vector<int> expand;  // middle width in percent of the stage's width, per block
  int stride = 1;           // of the stage's first block
};

struct Space : spec::SpaceChoices {
  static constexpr const char* kFamily = "resnet";
  std::vector<int> width_mult;  // percents, sorted
  int stem_width = 1;           // at width multiplier 100
  std::vector<StageSpec> stages;
  void write(spec::json& j) const override;
};

struct StageArch {
  int depth = 1;
  std::vector<int> expand;  // one ratio (percent) per active block: exactly `depth` entries
  bool operator==(const StageArch& o) const { return depth == o.depth && expand == o.expand; }
};

struct Choices : spec::ArchChoices {
  static constexpr const char* kFamily = "resnet";
  int width_mult = 100;
  std::vector<StageArch> stages;
  std::string family() const override { return kFamily; }
  void write(spec::json& j) const override;
  bool equals(const spec::ArchChoices& other) const override;
};

inline const Space& space_of(const spec::SearchSpace& s) { return part_of<Space>(s); }
inline const Choices& choices_of(const spec::Arch& a) { return part_of<Choices>(a); }

// Channels of a width at a multiplier (percent), rounded, at least 1; monotone in both, so that the
// narrower children's channels are prefixes of the wider ones'.
inline int scaled(int width, int percent) { return std::max(1, (width * percent + 50) / 100); }

}  // namespace nas::families::resnet
