#pragma once
// The torch side of a family (issue 22): its weight-sharing modules inside the supernet and its
// standalone child's modules. Each family's modules.cpp defines them and families/modules.cpp lists
// them (a second registry beside registry.cpp, which is torch-free: the torch-free library builds
// and fuzzes without LibTorch). A family's modules register themselves on the module that holds
// them (the supernet, or the child), so that parameter names are the family's own and checkpoints
// keep them.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "export/onnx_export.h"
#include "families/latency_ops.h"
#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::families {

class ChildNetImpl;

// A family's weight-sharing modules, registered on the supernet that holds them.
class SupernetModules {
 public:
  virtual ~SupernetModules() = default;
  // Child `a` (valid in the space); in training mode, `dropout` before the classifier and
  // stochastic depth `drop_connect` where the family has residual blocks.
  virtual torch::Tensor forward(const torch::Tensor& x, const spec::Arch& a, double dropout, double drop_connect,
                                bool training) = 0;
  // Copies the active weights (and BN statistics) of `a` into `child`, built for `a`; `host` is the
  // supernet module these modules are registered on.
  virtual void slice(const spec::Arch& a, ChildNetImpl& child, const torch::nn::Module& host) = 0;
  // The last BN gamma of every residual block: 0 (each block starts as the identity) or 1.
  virtual void init_last_bn_gamma(bool) {}
  // Sorts shared channels by importance (once-for-all); false when the family has none to sort.
  virtual bool sort_channels() { return false; }
  // DARTS's continuous relaxation; an undefined tensor when the family has none (only cell has).
  virtual torch::Tensor forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                                      const torch::Tensor& reduce_weights);
};

// A family's standalone child modules, registered on the ChildNet that holds them.
class ChildModules {
 public:
  virtual ~ChildModules() = default;
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // Writes the child's inference graph from "input" to "logits" (BatchNorms folded where a conv or
  // a Linear precedes them), in eval mode.
  virtual void export_onnx(exporter::GraphBuilder& b) = 0;
};

// One latency-table operator (families/latency_ops.h) as a module and an input of `batch` random
// images, run by the same code as the child runs it.
struct TimedOp {
  std::shared_ptr<torch::nn::Module> holder;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  torch::Tensor input;
};

class TorchFamily {
 public:
  virtual ~TorchFamily() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<SupernetModules> supernet(torch::nn::Module& host, const spec::SearchSpace& s,
                                                    int in_channels, int num_classes) const = 0;
  virtual std::unique_ptr<ChildModules> child(torch::nn::Module& host, const spec::SearchSpace& s, const spec::Arch& a,
                                              int in_channels, int num_classes) const = 0;
  // For families with latency-table operators (Family::latency_ops); Error for the others.
  virtual TimedOp timed_op(const LatencyOp& op, int batch) const;
};

// The torch side of a space's family; Error for a family without one.
const TorchFamily& torch_of(const spec::SearchSpace& s);

// The static twin of the supernet: a plain network of fixed size for one arch, built from standard
// LibTorch modules by its family, that loads and runs with no supernet.
class ChildNetImpl : public torch::nn::Module {
 public:
  ChildNetImpl(const spec::SearchSpace& space, const spec::Arch& arch, int in_channels, int num_classes);
  // x: [N, C, R, R] at the arch's resolution.
  torch::Tensor forward(const torch::Tensor& x) { return modules_->forward(x); }
  void export_onnx(exporter::GraphBuilder& b) { modules_->export_onnx(b); }
  // The family's modules, as their own type T (null when they are another family's).
  template <typename T>
  T* modules_as() const {
    return dynamic_cast<T*>(modules_.get());
  }

  spec::Arch arch;
  int in_channels, num_classes;

 private:
  std::unique_ptr<ChildModules> modules_;
};
TORCH_MODULE(ChildNet);

// The ONNX model of `net` (put in eval mode), serialized, after onnx::checker::check_model passed
// (export/onnx_export.h). UsageError when this build has no ONNX support.
std::string export_onnx(ChildNet& net);

}  // namespace nas::families
