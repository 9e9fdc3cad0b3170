#include "export/onnx_export.h"

#include <cctype>

#include "core/error.h"

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

bool onnx_available() { return true; }

std::string GraphBuilder::initializer(const std::string& name, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto* init = g_->add_initializer();
  init->set_name(name);
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : c.sizes()) init->add_dims(d);
  init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * 4));
  return name;
}

onnx::NodeProto* GraphBuilder::node(const std::string& op, const std::vector<std::string>& in, const std::string& out) {
  auto* n = g_->add_node();
  n->set_op_type(op);
  n->set_name(out);
  for (const auto& i : in) n->add_input(i);
  n->add_output(out);
  return n;
}

void GraphBuilder::ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void GraphBuilder::integer(onnx::NodeProto* n, const char* name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void GraphBuilder::real(onnx::NodeProto* n, const char* name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

std::string GraphBuilder::conv(const std::string& prefix, const std::string& x, torch::nn::Conv2d& c,
                               torch::nn::BatchNorm2d* bn) {
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

std::string GraphBuilder::batch_norm(const std::string& prefix, const std::string& x, torch::nn::BatchNorm2d& bn) {
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

std::string GraphBuilder::int64s(const std::string& name, const std::vector<int64_t>& v) {
  auto* init = g_->add_initializer();
  init->set_name(name);
  init->set_data_type(onnx::TensorProto::INT64);
  init->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) init->add_int64_data(x);
  return name;
}

std::string GraphBuilder::act(const std::string& x, nn::Act a) {
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

std::string GraphBuilder::scalar(float v) {
  std::string name = "const." + std::to_string(consts_++);
  return initializer(name, torch::tensor(v));
}

namespace {
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

std::string onnx_model(const std::string& name, int64_t in_channels, int resolution, int64_t num_classes,
                       const std::function<void(GraphBuilder&)>& build) {
  onnx::ModelProto model;
  model.set_ir_version(7);  // what opset 14 needs; readable by ONNX Runtime 1.8 and later
  model.set_producer_name("nas-toolchain");
  model.set_producer_version("1");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  auto* g = model.mutable_graph();
  g->set_name(name);
  value_info(g->add_input(), "input",
             {"batch", std::to_string(in_channels), std::to_string(resolution), std::to_string(resolution)});
  value_info(g->add_output(), "logits", {"batch", std::to_string(num_classes)});
  GraphBuilder b(g);
  build(b);
  return checked(model);
}

#else

bool onnx_available() { return false; }

std::string onnx_model(const std::string&, int64_t, int, int64_t, const std::function<void(GraphBuilder&)>&) {
  throw UsageError("--onnx: this build has no ONNX support (install libonnx-dev and rebuild: scripts/setup.sh)");
}

// Never called: no GraphBuilder exists without ONNX support (onnx_model refuses first).
std::string GraphBuilder::initializer(const std::string&, const torch::Tensor&) { throw Error("no ONNX support"); }
onnx::NodeProto* GraphBuilder::node(const std::string&, const std::vector<std::string>&, const std::string&) {
  throw Error("no ONNX support");
}
void GraphBuilder::ints(onnx::NodeProto*, const char*, const std::vector<int64_t>&) { throw Error("no ONNX support"); }
void GraphBuilder::integer(onnx::NodeProto*, const char*, int64_t) { throw Error("no ONNX support"); }
void GraphBuilder::real(onnx::NodeProto*, const char*, float) { throw Error("no ONNX support"); }
std::string GraphBuilder::conv(const std::string&, const std::string&, torch::nn::Conv2d&, torch::nn::BatchNorm2d*) {
  throw Error("no ONNX support");
}
std::string GraphBuilder::batch_norm(const std::string&, const std::string&, torch::nn::BatchNorm2d&) {
  throw Error("no ONNX support");
}
std::string GraphBuilder::int64s(const std::string&, const std::vector<int64_t>&) { throw Error("no ONNX support"); }
std::string GraphBuilder::act(const std::string&, nn::Act) { throw Error("no ONNX support"); }
std::string GraphBuilder::scalar(float) { throw Error("no ONNX support"); }

#endif

}  // namespace nas::exporter
