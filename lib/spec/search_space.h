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
  std::string family = "mbconv";  // or "mlp"
  bool is_mlp() const { return family == "mlp"; }
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
};

// Parses and validates; `file` names the source in errors. Choice sets are returned sorted.
SearchSpace search_space_from_json(const json& j, const std::string& file);
SearchSpace load_search_space(const std::string& path);
json to_json(const SearchSpace& s);

// Largest choices of a stage, used to size the shared weights.
int max_of(const std::vector<int>& v);
int min_of(const std::vector<int>& v);

}  // namespace nas::spec
