#include "export/onnx_export.h"

#include <cstdint>

#include "core/error.h"
#include "families/cell/cell.h"
#include "families/cell/modules.h"
#include "families/mbconv/modules.h"
#include "families/mlp/modules.h"
#include "spec/search_space.h"

#ifdef NAS_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif

namespace nas::exporter {

namespace {
// W' = W * gamma / sqrt(var + eps) per output channel (rows of a Linear, filters of a conv),
// b' = beta - mean * gamma / sqrt(var + eps).
template <typename BN>
std::pair<torch::Tensor, torch::Tensor> fold(const torch::Tensor& w, BN& bn) {
  torch::NoGradGuard g;
  const auto& o = bn->options;
  torch::Tensor gamma = o.affine() ? bn->weight : torch::ones_like(bn->running_mean);
  torch::Tensor beta = o.affine() ? bn->bias : torch::zeros_like(bn->running_mean);
  torch::Tensor scale = gamma / torch::sqrt(bn->running_var + o.eps());
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[0] = -1;
  torch::Tensor folded = w * scale.reshape(shape);
  torch::Tensor bias = beta - bn->running_mean * scale;
  return {folded.contiguous(), bias.contiguous()};
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& w, torch::nn::BatchNorm2d& bn) { return fold(w, bn); }
std::pair<torch::Tensor, torch::Tensor> fold_bn(const torch::Tensor& w, torch::nn::BatchNorm1d& bn) { return fold(w, bn); }

#ifdef NAS_HAVE_ONNX
namespace {
// Builds the graph node by node; names are unique by construction.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}

  std::string initializer(const std::string& name, const torch::Tensor& t) {
    torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    auto* init = g_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : c.sizes()) init->add_dims(d);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * 4));
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
  }

  static void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const char* name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  // A convolution with its BatchNorm folded in (or with its own bias when bn is null).
  std::string conv(const std::string& prefix, const std::string& x, torch::nn::Conv2d& c, torch::nn::BatchNorm2d* bn) {
    torch::Tensor w = c->weight, b;
    if (bn != nullptr) {
      std::tie(w, b) = fold_bn(c->weight, *bn);
    } else {
      b = c->bias.defined() ? c->bias : torch::zeros({w.size(0)});
    }
    const auto& o = c->options;
    auto* n = node("Conv", {x, initializer(prefix + ".weight", w), initializer(prefix + ".bias", b)}, prefix);
    const int64_t k = w.size(2), dil = o.dilation()->at(0), pad = dil * (k / 2);  // as every conv here pads
    ints(n, "kernel_shape", {k, w.size(3)});
    ints(n, "strides", {o.stride()->at(0), o.stride()->at(1)});
    ints(n, "pads", {pad, pad, pad, pad});
    if (dil != 1) ints(n, "dilations", {dil, dil});
    integer(n, "group", o.groups());
    return prefix;
  }

  // An inference BatchNormalization node (where no conv precedes it to fold into).
  std::string batch_norm(const std::string& prefix, const std::string& x, torch::nn::BatchNorm2d& bn) {
    const auto& o = bn->options;
    torch::Tensor gamma = o.affine() ? bn->weight : torch::ones_like(bn->running_mean);
    torch::Tensor beta = o.affine() ? bn->bias : torch::zeros_like(bn->running_mean);
    auto* n = node("BatchNormalization",
                   {x, initializer(prefix + ".scale", gamma), initializer(prefix + ".bias", beta),
                    initializer(prefix + ".mean", bn->running_mean), initializer(prefix + ".var", bn->running_var)},
                   prefix);
    real(n, "epsilon", static_cast<float>(o.eps()));
    return prefix;
  }

  std::string int64s(const std::string& name, const std::vector<int64_t>& v) {
    auto* init = g_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::INT64);
    init->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) init->add_int64_data(x);
    return name;
  }

  std::string act(const std::string& x, nn::Act a) {
    const std::string out = x + ".act";
    switch (a) {
      case nn::Act::kReLU:
        node("Relu", {x}, out);
        return out;
      case nn::Act::kReLU6:
        node("Clip", {x, scalar(0.0f), scalar(6.0f)}, out);
        return out;
      case nn::Act::kHSwish:
        node("HardSwish", {x}, out);
        return out;
      case nn::Act::kSwish:
        node("Sigmoid", {x}, x + ".sigmoid");
        node("Mul", {x, x + ".sigmoid"}, out);
        return out;
      case nn::Act::kGELU:  // no Gelu op before opset 20: x * 0.5 * (1 + erf(x / sqrt 2))
        node("Div", {x, scalar(1.4142135623730951f)}, x + ".scaled");
        node("Erf", {x + ".scaled"}, x + ".erf");
        node("Add", {x + ".erf", scalar(1.0f)}, x + ".erf1");
        node("Mul", {x, x + ".erf1"}, x + ".prod");
        node("Mul", {x + ".prod", scalar(0.5f)}, out);
        return out;
      case nn::Act::kTanh:
        node("Tanh", {x}, out);
        return out;
    }
    return x;
  }

  std::string scalar(float v) {
    std::string name = "const." + std::to_string(consts_++);
    return initializer(name, torch::tensor(v));
  }

 private:
  onnx::GraphProto* g_;
  int consts_ = 0;
};

void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::string>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  for (const auto& d : dims) {
    auto* dim = t->mutable_shape()->add_dim();
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0])))
      dim->set_dim_value(std::stoll(d));
    else
      dim->set_dim_param(d);
  }
}
}  // namespace

bool onnx_available() { return true; }

namespace {
// A cell child (family cell): each op as in nn/cell.cpp; a node with every edge none is a zero
// tensor of the node's shape, made by a 1x1 conv of zero weights (with the cell's stride) of the
// cell's input.
std::string export_cell_op(GraphBuilder& b, families::cell::CellOpImpl& op, const std::string& p, const std::string& x) {
  using K = families::cell::CellOpImpl::Kind;
  auto run_seq = [&](const std::string& in) {
    std::string h = in;
    auto& seq = *op.seq_;
    for (size_t i = 0; i < seq.size(); ++i) {
      const std::string q = p + "." + std::to_string(i);
      if (seq.ptr(i)->as<torch::nn::ReLUImpl>()) {
        b.node("Relu", {h}, q);
        h = q;
      } else if (auto c = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(seq.ptr(i))) {
        torch::nn::Conv2d conv(c);
        std::shared_ptr<torch::nn::BatchNorm2dImpl> bn;
        if (i + 1 < seq.size()) bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(seq.ptr(i + 1));
        if (bn) {
          torch::nn::BatchNorm2d holder(bn);
          h = b.conv(q, h, conv, &holder);
          ++i;  // folded
        } else {
          h = b.conv(q, h, conv, nullptr);
        }
      } else {
        throw Error("ONNX: unexpected module in cell op " + op.op);
      }
    }
    return h;
  };
  switch (op.kind_) {
    case K::kIdentity:
      return x;
    case K::kSeq:
      return run_seq(x);
    case K::kPool: {
      const std::string h = op.seq_ ? run_seq(x) : x;
      auto* n = b.node(op.max_pool_ ? "MaxPool" : "AveragePool", {h}, p + ".pool");
      GraphBuilder::ints(n, "kernel_shape", {3, 3});
      GraphBuilder::ints(n, "strides", {op.stride, op.stride});
      GraphBuilder::ints(n, "pads", {1, 1, 1, 1});
      if (!op.max_pool_) GraphBuilder::integer(n, "count_include_pad", 0);
      return p + ".pool";
    }
    case K::kFactorized: {
      b.node("Relu", {x}, p + ".relu");
      const std::string a = b.conv(p + ".a", p + ".relu", op.reduce_a_, nullptr);
      b.node("Pad", {p + ".relu", b.int64s(p + ".pads", {0, 0, 0, 0, 0, 0, 1, 1})}, p + ".pad");
      b.node("Slice", {p + ".pad", b.int64s(p + ".starts", {1, 1}), b.int64s(p + ".ends", {INT64_MAX, INT64_MAX}),
                       b.int64s(p + ".axes", {2, 3})},
             p + ".shift");
      const std::string c = b.conv(p + ".b", p + ".shift", op.reduce_b_, nullptr);
      GraphBuilder::integer(b.node("Concat", {a, c}, p + ".cat"), "axis", 1);
      torch::nn::BatchNorm2d bn(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(op.reduce_bn_.ptr()));
      return b.batch_norm(p + ".bn", p + ".cat", bn);
    }
    case K::kNone:
      break;
  }
  throw Error("ONNX: cell op none has no graph");
}

void export_cell_net(GraphBuilder& b, families::cell::CellNetImpl& net, const spec::Arch& arch) {
  const auto& a = families::cell::choices_of(arch);
  torch::nn::BatchNorm2d stem_bn(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(net.stem_bn_.ptr()));
  std::string h = b.conv("stem", "input", net.stem_, &stem_bn);
  for (size_t ci = 0; ci < net.cells_.size(); ++ci) {
    auto& cell = *net.cells_[ci];
    const auto& ops = net.is_reduce_[ci] ? a.reduce : a.normal;
    const std::string p = "cell" + std::to_string(ci);
    std::vector<std::string> node = {h};
    for (const auto& cell_node : families::cell::nodes_of(cell.nodes)) {
      const std::string name = p + ".node" + std::to_string(cell_node.to);
      std::string sum;
      for (const auto& edge : cell_node.inputs) {
        const size_t e = edge.index;
        if (ops[e] == "none") continue;
        std::string y = export_cell_op(b, *cell.op_of(e, ops[e]), p + ".edge" + std::to_string(e),
                                       node[static_cast<size_t>(edge.from)]);
        if (sum.empty()) {
          sum = y;
        } else {
          const std::string s2 = name + ".add" + std::to_string(edge.from);
          b.node("Add", {sum, y}, s2);
          sum = s2;
        }
      }
      if (sum.empty()) {  // every edge none: zeros of the node's shape
        const std::string z = name + ".zeros";
        auto* n = b.node("Conv", {node[0], b.initializer(z + ".weight", torch::zeros({cell.c_out, cell.c_in, 1, 1}))}, z);
        GraphBuilder::ints(n, "kernel_shape", {1, 1});
        GraphBuilder::ints(n, "strides", {cell.stride, cell.stride});
        sum = z;
      }
      node.push_back(sum);
    }
    h = node.back();
  }
  torch::nn::BatchNorm2d head_bn(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(net.head_bn_.ptr()));
  b.node("Relu", {b.batch_norm("head.bn", h, head_bn)}, "head.relu");
  b.node("GlobalAveragePool", {"head.relu"}, "pool");
  GraphBuilder::integer(b.node("Flatten", {"pool"}, "flat"), "axis", 1);
  auto* fc = b.node("Gemm", {"flat", b.initializer("classifier.weight", net.classifier_->weight),
                             b.initializer("classifier.bias", net.classifier_->bias)},
                    "logits");
  GraphBuilder::integer(fc, "transB", 1);
}
}  // namespace

namespace {
// mlp: Flatten, then per layer a Gemm with its BN folded in, the activation; the classifier.
void export_mlp(GraphBuilder& b, families::mlp::ChildModulesImpl& net) {
  GraphBuilder::integer(b.node("Flatten", {"input"}, "flat"), "axis", 1);
  std::string h = "flat";
  for (size_t i = 0; i < net.fc.size(); ++i) {
    const std::string p = "layer" + std::to_string(i);
    auto [w, bias] = fold_bn(net.fc[i]->weight, net.fc_bn[i]);
    auto* n = b.node("Gemm", {h, b.initializer(p + ".weight", w), b.initializer(p + ".bias", bias)}, p);
    GraphBuilder::integer(n, "transB", 1);
    h = b.act(p, net.fc_act[i]);
  }
  auto* fc = b.node("Gemm", {h, b.initializer("classifier.weight", net.classifier->weight),
                             b.initializer("classifier.bias", net.classifier->bias)},
                    "logits");
  GraphBuilder::integer(fc, "transB", 1);
}

// mbconv: stem, blocks (squeeze-excite as 1x1 convolutions), head, classifier.
void export_mbconv(GraphBuilder& b, families::mbconv::ChildModulesImpl& net) {
  std::string h = b.act(b.conv("stem", "input", net.stem, &net.stem_bn), net.stem_act);
  for (size_t i = 0; i < net.blocks.size(); ++i) {
    auto& blk = net.blocks[i];
    const std::string p = "block" + std::to_string(i);
    const std::string x = h;
    if (blk->has_expand) h = b.act(b.conv(p + ".expand", h, blk->expand_conv, &blk->expand_bn), blk->act);
    h = b.act(b.conv(p + ".dw", h, blk->dw_conv, &blk->dw_bn), blk->act);
    if (blk->se) {
      // Squeeze-excite as 1x1 convolutions on the pooled [N, C, 1, 1] tensor.
      b.node("GlobalAveragePool", {h}, p + ".se.pool");
      auto reduce = [&](torch::nn::Linear& l, const std::string& name, const std::string& in) {
        torch::Tensor w = l->weight.reshape({l->weight.size(0), l->weight.size(1), 1, 1});
        auto* n = b.node("Conv", {in, b.initializer(name + ".weight", w), b.initializer(name + ".bias", l->bias)}, name);
        GraphBuilder::ints(n, "kernel_shape", {1, 1});
        return name;
      };
      std::string s = reduce(blk->se_reduce, p + ".se.reduce", p + ".se.pool");
      b.node("Relu", {s}, p + ".se.relu");
      s = reduce(blk->se_expand, p + ".se.expand", p + ".se.relu");
      auto* hs = b.node("HardSigmoid", {s}, p + ".se.gate");
      GraphBuilder::real(hs, "alpha", 1.0f / 6.0f);
      GraphBuilder::real(hs, "beta", 0.5f);
      b.node("Mul", {h, p + ".se.gate"}, p + ".se");
      h = p + ".se";
    }
    h = b.conv(p + ".project", h, blk->project_conv, &blk->project_bn);
    if (blk->residual) {
      b.node("Add", {h, x}, p + ".add");
      h = p + ".add";
    }
  }
  h = b.act(b.conv("head", h, net.head, &net.head_bn), net.head_act);
  b.node("GlobalAveragePool", {h}, "pool");
  GraphBuilder::integer(b.node("Flatten", {"pool"}, "flat"), "axis", 1);
  auto* fc = b.node("Gemm", {"flat", b.initializer("classifier.weight", net.classifier->weight),
                             b.initializer("classifier.bias", net.classifier->bias)},
                    "logits");
  GraphBuilder::integer(fc, "transB", 1);
}


// The model's bytes once the ONNX checker accepts it.
std::string checked(onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw Error(std::string("ONNX checker rejected the exported model: ") + e.what());
  }
  std::string out;
  NAS_CHECK(model.SerializeToString(&out), Error, "ONNX: could not serialize the model");
  return out;
}
}  // namespace

std::string export_onnx(families::ChildNet& net) {
  torch::NoGradGuard no_grad;
  net->eval();
  onnx::ModelProto model;
  model.set_ir_version(7);  // what opset 14 needs; readable by ONNX Runtime 1.8 and later
  model.set_producer_name("nas-toolchain");
  model.set_producer_version("1");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  auto* g = model.mutable_graph();
  g->set_name(net->arch.space + "." + spec::arch_hash(net->arch));
  const auto& a = net->arch;
  value_info(g->add_input(), "input",
             {"batch", std::to_string(net->in_channels), std::to_string(a.resolution), std::to_string(a.resolution)});
  value_info(g->add_output(), "logits", {"batch", std::to_string(net->num_classes)});
  GraphBuilder b(g);
  if (auto* cell = net->modules_as<families::cell::ChildModulesImpl>()) {
    export_cell_net(b, *cell->net, a);
    return checked(model);
  }
  if (auto* mlp = net->modules_as<families::mlp::ChildModulesImpl>()) {
    export_mlp(b, *mlp);
    return checked(model);
  }
  export_mbconv(b, *net->modules_as<families::mbconv::ChildModulesImpl>());
  return checked(model);
}

#else

bool onnx_available() { return false; }

std::string export_onnx(families::ChildNet&) {
  throw UsageError("--onnx: this build has no ONNX support (install libonnx-dev and rebuild: scripts/setup.sh)");
}

#endif

}  // namespace nas::exporter
