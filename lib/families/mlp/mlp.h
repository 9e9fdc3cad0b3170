#pragma once
// Family mlp: a chain of fully connected hidden layers (elastic depth, per-layer width and
// activation) on the flattened input at one resolution: images resized to it, then flattened;
// tabular rows are 1x1 images with one channel per feature. Then the first `depth` of `layers`,
// then a linear classifier.
#include <string>
#include <vector>

#include "families/family.h"

namespace nas::families::mlp {

const Family& family();

// One hidden layer: Linear (prefix slice of the widest), BatchNorm, activation.
struct LayerSpec {
  std::vector<int> width;
  std::vector<std::string> act;  // choices, in the order the file lists them
};

// The space's `resolution` holds exactly one value.
struct Space : spec::SpaceChoices {
  static constexpr const char* kFamily = "mlp";
  std::vector<int> depth;
  std::vector<LayerSpec> layers;  // max(depth) entries
  void write(spec::json& j) const override;
};

struct LayerArch {
  int width = 1;
  std::string act = "relu";
  bool operator==(const LayerArch& o) const { return width == o.width && act == o.act; }
};

// A child's choices: its active hidden layers (depth = layers.size() >= 1).
struct Choices : spec::ArchChoices {
  static constexpr const char* kFamily = "mlp";
  std::vector<LayerArch> layers;
  std::string family() const override { return kFamily; }
  void write(spec::json& j) const override;
  bool equals(const spec::ArchChoices& other) const override;
};

inline const Space& space_of(const spec::SearchSpace& s) { return part_of<Space>(s); }
inline const Choices& choices_of(const spec::Arch& a) { return part_of<Choices>(a); }

}  // namespace nas::families::mlp
