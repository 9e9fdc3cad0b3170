#pragma once
// Family cell's modules (NAS-Bench-201 / DARTS): the edge ops, the cell and the whole network, built over a
// list of candidate ops per edge. The supernet's network holds every op of the space on every edge
// (one-shot weights, each op its own), a sliced child's only its chosen ones; modules are named
// alike ("cell3.edge2_nor_conv_3x3...") so that a child's state is a subset of the supernet's.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "families/cell/cell.h"
#include "families/modules.h"
#include "nn/elastic.h"

namespace nas::families::cell {

// One op (a name of op_names()) from c_in to c_out channels with stride 1 or 2: ReLU,
// conv(s), BN, as op_cost counts them. elastic_bn: BNs are DynamicBatchNorm2d (the
// supernet, whose BN recalibration relies on them), else torch::nn::BatchNorm2d.
class CellOpImpl : public torch::nn::Module {
 public:
  CellOpImpl(const std::string& op, int64_t c_in, int64_t c_out, int64_t stride, bool elastic_bn);
  // Not callable for "none" (the cell skips it).
  torch::Tensor forward(const torch::Tensor& x);

  std::string op;
  int64_t c_in, c_out, stride;
  // The structure, as export/onnx_export.cpp reads it.
  enum class Kind { kNone, kIdentity, kSeq, kPool, kFactorized } kind_ = Kind::kNone;
  torch::nn::Sequential seq_{nullptr};  // ReLU, convs, BNs (pools: the 1x1 conv that adapts channels)
  bool max_pool_ = false;
  torch::nn::Conv2d reduce_a_{nullptr}, reduce_b_{nullptr};  // factorized reduce
  torch::nn::AnyModule reduce_bn_;
};
TORCH_MODULE(CellOp);

// A cell: node 0 is its input; node j (1..nodes) sums an op on each edge from nodes 0..j-1; the
// output is the last node. Edges from node 0 have the cell's stride and change c_in to c_out.
class CellImpl : public torch::nn::Module {
 public:
  // candidates[e]: the ops edge e holds, in the order of the mixing weights' columns.
  CellImpl(int nodes, const std::vector<std::vector<std::string>>& candidates, int64_t c_in, int64_t c_out,
           int64_t stride, bool elastic_bn);
  // ops[e]: the op edge e runs (one of its candidates).
  torch::Tensor forward(const torch::Tensor& x, const std::vector<std::string>& ops);
  // The continuous relaxation: edge e's output is sum_k weights[e][k] * candidate_k(input)
  // (weights [edges, candidates], e.g. a softmax per row; none contributes nothing).
  torch::Tensor forward_mixed(const torch::Tensor& x, const torch::Tensor& weights);

  int nodes;
  int64_t c_in, c_out, stride;
  CellOp& op_of(size_t e, const std::string& name);  // null for none

 private:
  torch::Tensor zeros_like_node(const torch::Tensor& x) const;
  std::vector<std::vector<std::string>> candidates_;
  std::vector<std::vector<CellOp>> ops_;  // per edge, per candidate (null for none)
};
TORCH_MODULE(Cell);

// Stem (3x3 conv, BN), the stages of normal cells joined by reduction cells, head (BN, ReLU,
// global average pooling, linear classifier).
class CellNetImpl : public torch::nn::Module {
 public:
  // normal/reduce: the candidate ops of every edge of either kind of cell.
  CellNetImpl(const spec::SearchSpace& space, const std::vector<std::vector<std::string>>& normal,
              const std::vector<std::vector<std::string>>& reduce, int in_channels, int num_classes, bool elastic_bn);
  // dropout: before the classifier, in training mode.
  torch::Tensor forward(const torch::Tensor& x, const std::vector<std::string>& normal,
                        const std::vector<std::string>& reduce, double dropout = 0.0);
  torch::Tensor forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                              const torch::Tensor& reduce_weights);

  // The structure, as export/onnx_export.cpp reads it.
  torch::nn::Conv2d stem_{nullptr};
  torch::nn::AnyModule stem_bn_, head_bn_;
  std::vector<Cell> cells_;
  std::vector<bool> is_reduce_;
  torch::nn::Linear classifier_{nullptr};

 private:
  template <typename F>
  torch::Tensor run(const torch::Tensor& x, F cell_forward, double dropout);
};
TORCH_MODULE(CellNet);

// Every edge of a cell of `space` holding all of the space's ops (the supernet).
std::vector<std::vector<std::string>> all_ops(const spec::SearchSpace& space);
// Every edge holding only the op `ops[e]` (a child).
std::vector<std::vector<std::string>> chosen_ops(const std::vector<std::string>& ops);

const TorchFamily& torch_family();

// A child's modules: the network of its chosen ops, registered as "net" like the supernet's.
class ChildModulesImpl : public ChildModules {
 public:
  ChildModulesImpl(torch::nn::Module& host, const spec::SearchSpace& space, const Choices& a, int in_channels,
                   int num_classes);
  torch::Tensor forward(const torch::Tensor& x) override { return net->forward(x, choices_.normal, choices_.reduce); }
  void export_onnx(exporter::GraphBuilder& b) override;

  CellNet net{nullptr};

 private:
  Choices choices_;
};

}  // namespace nas::families::cell
