#include "families/cell/modules.h"

#include "core/error.h"
#include "nn/elastic.h"

namespace nas::families::cell {

namespace {
torch::nn::AnyModule make_bn(int64_t c, bool elastic) {
  if (elastic) return torch::nn::AnyModule(nn::DynamicBatchNorm2d(c));
  return torch::nn::AnyModule(torch::nn::BatchNorm2d(c));
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups = 1, int64_t dilation = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k)
                               .stride(stride)
                               .padding(dilation * (k / 2))
                               .dilation(dilation)
                               .groups(groups)
                               .bias(false));
}

int64_t kernel_of(const std::string& op) { return op.back() - '0'; }  // "..._3x3"
}  // namespace

CellOpImpl::CellOpImpl(const std::string& name, int64_t in, int64_t out, int64_t s, bool elastic_bn)
    : op(name), c_in(in), c_out(out), stride(s) {
  auto seq = [&] {
    seq_ = register_module("seq", torch::nn::Sequential());
    return seq_;
  };
  auto relu_conv_bn = [&](torch::nn::Sequential q, int64_t ci, int64_t co, int64_t k, int64_t st) {
    q->push_back(torch::nn::ReLU());
    q->push_back(conv(ci, co, k, st));
    q->push_back(make_bn(co, elastic_bn));
  };
  if (op == "none") {
    kind_ = Kind::kNone;
  } else if (op.rfind("nor_conv_", 0) == 0) {
    kind_ = Kind::kSeq;
    relu_conv_bn(seq(), in, out, kernel_of(op), s);
  } else if (op.rfind("sep_conv_", 0) == 0) {  // DARTS: two separable convs, the first with the stride
    kind_ = Kind::kSeq;
    auto q = seq();
    const int64_t k = kernel_of(op);
    q->push_back(torch::nn::ReLU());
    q->push_back(conv(in, in, k, s, in));
    q->push_back(conv(in, in, 1, 1));
    q->push_back(make_bn(in, elastic_bn));
    q->push_back(torch::nn::ReLU());
    q->push_back(conv(in, in, k, 1, in));
    q->push_back(conv(in, out, 1, 1));
    q->push_back(make_bn(out, elastic_bn));
  } else if (op.rfind("dil_conv_", 0) == 0) {
    kind_ = Kind::kSeq;
    auto q = seq();
    q->push_back(torch::nn::ReLU());
    q->push_back(conv(in, in, kernel_of(op), s, in, 2));
    q->push_back(conv(in, out, 1, 1));
    q->push_back(make_bn(out, elastic_bn));
  } else if (op == "avg_pool_3x3" || op == "max_pool_3x3") {
    kind_ = Kind::kPool;
    max_pool_ = op == "max_pool_3x3";
    if (in != out) relu_conv_bn(seq(), in, out, 1, 1);
  } else if (op == "skip_connect") {
    if (s == 1 && in == out) {
      kind_ = Kind::kIdentity;
    } else if (s == 1) {
      kind_ = Kind::kSeq;
      relu_conv_bn(seq(), in, out, 1, 1);
    } else {
      kind_ = Kind::kFactorized;
      reduce_a_ = register_module("reduce_a", conv(in, out / 2, 1, s));
      reduce_b_ = register_module("reduce_b", conv(in, out - out / 2, 1, s));
      reduce_bn_ = make_bn(out, elastic_bn);
      register_module("reduce_bn", reduce_bn_.ptr());
    }
  } else {
    throw SpecError("cell op: expected one of the cell ops (families::cell::op_names), found \"" + op + "\"");
  }
}

namespace {
// Sequential::forward, with its ReLUs through nn::apply_act (so that an activation tap sees them).
torch::Tensor run_seq(torch::nn::Sequential& seq, torch::Tensor h) {
  for (auto& m : *seq) h = m.ptr()->as<torch::nn::ReLUImpl>() ? nn::apply_act(h, nn::Act::kReLU) : m.forward<torch::Tensor>(h);
  return h;
}
}  // namespace

torch::Tensor CellOpImpl::forward(const torch::Tensor& x) {
  switch (kind_) {
    case Kind::kIdentity:
      return x;
    case Kind::kSeq:
      return run_seq(seq_, x);
    case Kind::kPool: {
      torch::Tensor h = seq_ ? run_seq(seq_, x) : x;
      if (max_pool_) return torch::max_pool2d(h, {3, 3}, {stride, stride}, {1, 1});
      return torch::avg_pool2d(h, {3, 3}, {stride, stride}, {1, 1}, false, /*count_include_pad=*/false);
    }
    case Kind::kFactorized: {
      // Two half-width 1x1 convs of stride 2, the second on the input shifted by one pixel (padded
      // at the bottom and right so that odd sizes give equal halves), concatenated, then BN.
      torch::Tensor h = nn::apply_act(x, nn::Act::kReLU);
      torch::Tensor a = reduce_a_(h);
      torch::Tensor shifted = torch::constant_pad_nd(h, {0, 1, 0, 1}).narrow(2, 1, h.size(2)).narrow(3, 1, h.size(3));
      torch::Tensor b = reduce_b_(shifted);
      return reduce_bn_.forward(torch::cat({a, b}, 1));
    }
    case Kind::kNone:
      break;
  }
  throw Error("cell op none has no forward (the cell skips it)");
}

CellImpl::CellImpl(int n, const std::vector<std::vector<std::string>>& candidates, int64_t in, int64_t out, int64_t s,
                   bool elastic_bn)
    : nodes(n), c_in(in), c_out(out), stride(s), candidates_(candidates) {
  NAS_CHECK(candidates.size() == static_cast<size_t>(n * (n + 1) / 2), Error,
            "cell: expected " << n * (n + 1) / 2 << " edges for " << n << " nodes, found " << candidates.size());
  for (const auto& node : nodes_of(n))
    for (const auto& edge : node.inputs) {
      std::vector<CellOp> ops;
      for (const auto& name : candidates[edge.index]) {
        if (name == "none") {
          ops.emplace_back(nullptr);
          continue;
        }
        CellOp op = edge.from == 0 ? CellOp(name, in, out, s, elastic_bn) : CellOp(name, out, out, 1, elastic_bn);
        ops.push_back(register_module("edge" + std::to_string(edge.index) + "_" + name, op));
      }
      ops_.push_back(std::move(ops));
    }
}

CellOp& CellImpl::op_of(size_t e, const std::string& name) {
  const auto& c = candidates_[e];
  auto it = std::find(c.begin(), c.end(), name);
  NAS_CHECK(it != c.end(), Error, "cell: edge " << e << " has no op \"" << name << "\"");
  return ops_[e][static_cast<size_t>(it - c.begin())];
}

torch::Tensor CellImpl::zeros_like_node(const torch::Tensor& x) const {
  // A node with every edge none: zeros of a node's shape (a stride-2 conv's output size).
  const int64_t h = (x.size(2) - 1) / stride + 1, w = (x.size(3) - 1) / stride + 1;
  return torch::zeros({x.size(0), c_out, h, w}, x.options());
}

namespace {
// The cell's dataflow, shared by the discrete and the mixed forward: node j is the sum over edges e
// from nodes i < j of add(e, node i, sum), where add returns the new partial sum (or the undefined
// one it was given when the edge contributes nothing); a node nothing reached is zeros().
template <typename Add, typename Zeros>
torch::Tensor run_cell(int nodes, const torch::Tensor& x, Add add, Zeros zeros) {
  std::vector<torch::Tensor> node = {x};
  for (const auto& n : nodes_of(nodes)) {
    torch::Tensor sum;
    for (const auto& edge : n.inputs) sum = add(edge.index, node[static_cast<size_t>(edge.from)], sum);
    node.push_back(sum.defined() ? sum : zeros());
  }
  return node.back();
}

torch::Tensor plus(const torch::Tensor& sum, const torch::Tensor& y) { return sum.defined() ? sum + y : y; }
}  // namespace

torch::Tensor CellImpl::forward(const torch::Tensor& x, const std::vector<std::string>& ops) {
  NAS_CHECK(ops.size() == ops_.size(), Error, "cell: expected " << ops_.size() << " ops, found " << ops.size());
  return run_cell(
      nodes, x,
      [&](size_t e, const torch::Tensor& in, const torch::Tensor& sum) {
        return ops[e] == "none" ? sum : plus(sum, op_of(e, ops[e])->forward(in));
      },
      [&] { return zeros_like_node(x); });
}

torch::Tensor CellImpl::forward_mixed(const torch::Tensor& x, const torch::Tensor& weights) {
  NAS_CHECK(weights.dim() == 2 && weights.size(0) == static_cast<int64_t>(ops_.size()), Error,
            "cell: expected mixing weights [" << ops_.size() << ", ops], found " << weights.sizes());
  return run_cell(
      nodes, x,
      [&](size_t e, const torch::Tensor& in, torch::Tensor sum) {
        for (size_t k = 0; k < ops_[e].size(); ++k)
          if (ops_[e][k])  // none contributes nothing
            sum = plus(sum, ops_[e][k]->forward(in) * weights[static_cast<int64_t>(e)][static_cast<int64_t>(k)]);
        return sum;
      },
      [&] { return zeros_like_node(x); });
}

std::vector<std::vector<std::string>> all_ops(const spec::SearchSpace& space) {
  const Space& s = space_of(space);
  return std::vector<std::vector<std::string>>(static_cast<size_t>(s.num_edges()), s.ops);
}

std::vector<std::vector<std::string>> chosen_ops(const std::vector<std::string>& ops) {
  std::vector<std::vector<std::string>> out;
  for (const auto& op : ops) out.push_back({op});
  return out;
}

CellNetImpl::CellNetImpl(const spec::SearchSpace& space, const std::vector<std::vector<std::string>>& normal,
                         const std::vector<std::vector<std::string>>& reduce, int in_channels, int num_classes,
                         bool elastic_bn) {
  const Space& s = space_of(space);
  int64_t ch = s.width;
  stem_ = register_module("stem", conv(in_channels, ch, 3, 1));
  stem_bn_ = make_bn(ch, elastic_bn);
  register_module("stem_bn", stem_bn_.ptr());
  int k = 0;
  for (size_t st = 0; st < s.cells.size(); ++st) {
    if (st > 0) {
      cells_.push_back(register_module("cell" + std::to_string(k++), Cell(s.nodes, reduce, ch, 2 * ch, 2, elastic_bn)));
      is_reduce_.push_back(true);
      ch *= 2;
    }
    for (int c = 0; c < s.cells[st]; ++c) {
      cells_.push_back(register_module("cell" + std::to_string(k++), Cell(s.nodes, normal, ch, ch, 1, elastic_bn)));
      is_reduce_.push_back(false);
    }
  }
  head_bn_ = make_bn(ch, elastic_bn);
  register_module("head_bn", head_bn_.ptr());
  classifier_ = register_module("classifier", torch::nn::Linear(ch, num_classes));
}

template <typename F>
torch::Tensor CellNetImpl::run(const torch::Tensor& x, F cell_forward, double dropout) {
  torch::Tensor h = nn::to_channels_last(stem_(x));
  h = stem_bn_.forward(h);
  for (size_t i = 0; i < cells_.size(); ++i) h = cell_forward(cells_[i], is_reduce_[i], h);
  h = nn::apply_act(head_bn_.forward(h), nn::Act::kReLU);
  h = h.mean({2, 3});
  if (dropout > 0 && is_training()) h = nn::dropout_rows(h, dropout);
  return classifier_(h);
}

torch::Tensor CellNetImpl::forward(const torch::Tensor& x, const std::vector<std::string>& normal,
                                   const std::vector<std::string>& reduce, double dropout) {
  return run(x, [&](Cell& c, bool red, const torch::Tensor& h) { return c->forward(h, red ? reduce : normal); },
             dropout);
}

torch::Tensor CellNetImpl::forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                                         const torch::Tensor& reduce_weights) {
  return run(x,
             [&](Cell& c, bool red, const torch::Tensor& h) {
               return c->forward_mixed(h, red ? reduce_weights : normal_weights);
             },
             0.0);
}

namespace {
// A cell child: each op as in its module above; a node with every edge none is a zero
// tensor of the node's shape, made by a 1x1 conv of zero weights (with the cell's stride) of the
// cell's input.
std::string export_op(exporter::GraphBuilder& b, CellOpImpl& op, const std::string& p, const std::string& x) {
  using K = CellOpImpl::Kind;
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
      exporter::GraphBuilder::ints(n, "kernel_shape", {3, 3});
      exporter::GraphBuilder::ints(n, "strides", {op.stride, op.stride});
      exporter::GraphBuilder::ints(n, "pads", {1, 1, 1, 1});
      if (!op.max_pool_) exporter::GraphBuilder::integer(n, "count_include_pad", 0);
      return p + ".pool";
    }
    case K::kFactorized: {
      b.node("Relu", {x}, p + ".relu");
      const std::string a = b.conv(p + ".a", p + ".relu", op.reduce_a_, nullptr);
      b.node("Pad", {p + ".relu", b.int64s(p + ".pads", {0, 0, 0, 0, 0, 0, 1, 1})}, p + ".pad");
      b.node("Slice",
             {p + ".pad", b.int64s(p + ".starts", {1, 1}), b.int64s(p + ".ends", {INT64_MAX, INT64_MAX}),
              b.int64s(p + ".axes", {2, 3})},
             p + ".shift");
      const std::string c = b.conv(p + ".b", p + ".shift", op.reduce_b_, nullptr);
      exporter::GraphBuilder::integer(b.node("Concat", {a, c}, p + ".cat"), "axis", 1);
      torch::nn::BatchNorm2d bn(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(op.reduce_bn_.ptr()));
      return b.batch_norm(p + ".bn", p + ".cat", bn);
    }
    case K::kNone:
      break;
  }
  throw Error("ONNX: cell op none has no graph");
}

void export_net(exporter::GraphBuilder& b, CellNetImpl& net, const Choices& a) {
  torch::nn::BatchNorm2d stem_bn(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(net.stem_bn_.ptr()));
  std::string h = b.conv("stem", "input", net.stem_, &stem_bn);
  for (size_t ci = 0; ci < net.cells_.size(); ++ci) {
    auto& cell = *net.cells_[ci];
    const auto& ops = net.is_reduce_[ci] ? a.reduce : a.normal;
    const std::string p = "cell" + std::to_string(ci);
    std::vector<std::string> node = {h};
    for (const auto& cell_node : nodes_of(cell.nodes)) {
      const std::string name = p + ".node" + std::to_string(cell_node.to);
      std::string sum;
      for (const auto& edge : cell_node.inputs) {
        const size_t e = edge.index;
        if (ops[e] == "none") continue;
        std::string y =
            export_op(b, *cell.op_of(e, ops[e]), p + ".edge" + std::to_string(e), node[static_cast<size_t>(edge.from)]);
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
        auto* n =
            b.node("Conv", {node[0], b.initializer(z + ".weight", torch::zeros({cell.c_out, cell.c_in, 1, 1}))}, z);
        exporter::GraphBuilder::ints(n, "kernel_shape", {1, 1});
        exporter::GraphBuilder::ints(n, "strides", {cell.stride, cell.stride});
        sum = z;
      }
      node.push_back(sum);
    }
    h = node.back();
  }
  torch::nn::BatchNorm2d head_bn(std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(net.head_bn_.ptr()));
  b.node("Relu", {b.batch_norm("head.bn", h, head_bn)}, "head.relu");
  b.node("GlobalAveragePool", {"head.relu"}, "pool");
  exporter::GraphBuilder::integer(b.node("Flatten", {"pool"}, "flat"), "axis", 1);
  auto* fc = b.node("Gemm",
                    {"flat", b.initializer("classifier.weight", net.classifier_->weight),
                     b.initializer("classifier.bias", net.classifier_->bias)},
                    "logits");
  exporter::GraphBuilder::integer(fc, "transB", 1);
}
}  // namespace

void ChildModulesImpl::export_onnx(exporter::GraphBuilder& b) { export_net(b, *net, choices_); }

ChildModulesImpl::ChildModulesImpl(torch::nn::Module& host, const spec::SearchSpace& space, const Choices& a,
                                   int in_channels, int num_classes)
    : choices_(a) {
  net = host.register_module(
      "net", CellNet(space, chosen_ops(a.normal), chosen_ops(a.reduce), in_channels, num_classes, false));
}

namespace {

// The supernet's modules: every op of the space on every edge, each with its own weights.
class SupernetModulesImpl : public SupernetModules {
 public:
  SupernetModulesImpl(torch::nn::Module& host, const spec::SearchSpace& s, int in_channels, int num_classes) {
    net_ = host.register_module("net", CellNet(s, all_ops(s), all_ops(s), in_channels, num_classes, true));
  }
  torch::Tensor forward(const torch::Tensor& x, const spec::Arch& arch, double dropout, double, bool) override {
    const auto& c = choices_of(arch);
    return net_->forward(x, c.normal, c.reduce, dropout);
  }
  torch::Tensor forward_mixed(const torch::Tensor& x, const torch::Tensor& normal_weights,
                              const torch::Tensor& reduce_weights) override {
    return net_->forward_mixed(x, normal_weights, reduce_weights);
  }
  // The child's modules are named as the supernet's.
  void slice(const spec::Arch&, ChildNetImpl& child, const torch::nn::Module& host) override {
    nn::copy_state_by_name(child, host);
  }

 private:
  CellNet net_{nullptr};
};

class CellTorchFamily : public TorchFamily {
 public:
  std::string name() const override { return "cell"; }
  std::unique_ptr<SupernetModules> supernet(torch::nn::Module& host, const spec::SearchSpace& s, int in_channels,
                                            int num_classes) const override {
    return std::make_unique<SupernetModulesImpl>(host, s, in_channels, num_classes);
  }
  std::unique_ptr<ChildModules> child(torch::nn::Module& host, const spec::SearchSpace& s, const spec::Arch& a,
                                      int in_channels, int num_classes) const override {
    return std::make_unique<ChildModulesImpl>(host, s, choices_of(a), in_channels, num_classes);
  }
};

}  // namespace

const TorchFamily& torch_family() {
  static const CellTorchFamily f;
  return f;
}

}  // namespace nas::families::cell
