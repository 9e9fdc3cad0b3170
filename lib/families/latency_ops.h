#pragma once
// A latency table's operators (supernet/latency_table.h): the pieces a family's child is made of,
// each timed alone on the device (eval/lut.h, through the family's TorchFamily::timed_op). A family
// whose children are chains of such pieces offers them (Family::latency_ops); the others have no
// latency tables, and their children are measured whole. Torch-free.
#include <string>
#include <vector>

#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::families {

// One operator of a child, with everything that changes its latency.
struct LatencyOp {
  std::string kind;  // the family's name for it, e.g. mbconv's "stem", "block" or "head"
  int in = 0;        // input channels
  int out = 0;       // output channels (head: head width)
  int expand = 1;    // block: expand ratio (1 without an expansion conv)
  int kernel = 1;    // stem, block: kernel size
  int stride = 1;
  int res = 0;       // input resolution
  bool residual = false, se = false, has_expand = false;
  std::string act;   // activation
  int classes = 0;   // head: classifier outputs
  std::string part;  // the part of the child the learned model sums it into (one of LatencyOps::parts)
  std::string key;   // what a table is keyed by, written by the family: equal keys, equal operators
};

class LatencyOps {
 public:
  virtual ~LatencyOps() = default;
  // The operators of child `a` of `s`, in the order the child runs them.
  virtual std::vector<LatencyOp> of_child(const spec::SearchSpace& s, const spec::Arch& a, int in_channels,
                                          int num_classes) const = 0;
  // Every operator any child of `s` can have (repeats allowed).
  virtual std::vector<LatencyOp> of_space(const spec::SearchSpace& s, int in_channels, int num_classes) const = 0;
  // The parts a child's operators fall into, in the learned model's feature order.
  virtual std::vector<std::string> parts(const spec::SearchSpace& s) const = 0;
  // The operators counted as the model's "blocks" feature.
  virtual bool is_block(const LatencyOp& op) const = 0;
};

}  // namespace nas::families
