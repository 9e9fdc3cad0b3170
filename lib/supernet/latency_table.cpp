#include "supernet/latency_table.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "families/family.h"

namespace nas::supernet {

namespace {
// The latency-table operators of s's family (UsageError for a family without).
const families::LatencyOps& ops_of(const spec::SearchSpace& s) {
  const families::LatencyOps* ops = families::of(s).latency_ops();
  NAS_CHECK(ops, UsageError,
            "space \"" << s.name << "\" (family " << s.family
                       << ") has no latency-table operators; measure its children instead (nas-search "
                          "--max-latency-ms measures each candidate)");
  return *ops;
}
}  // namespace

std::vector<LatencyOp> arch_ops(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) {
  return ops_of(s).of_child(s, a, in_channels, num_classes);
}

std::vector<LatencyOp> space_ops(const spec::SearchSpace& s, int in_channels, int num_classes) {
  std::map<std::string, LatencyOp> distinct;
  for (auto& op : ops_of(s).of_space(s, in_channels, num_classes)) {
    NAS_CHECK(!op.key.empty(), Error,
              "space_ops: family " << s.family << " left an operator of kind " << op.kind << " without its key");
    distinct.emplace(op.key, std::move(op));
  }
  std::vector<LatencyOp> ops;
  for (auto& [k, op] : distinct) ops.push_back(op);
  return ops;
}

std::string space_hash(const spec::SearchSpace& s) { return spec::json_hash(spec::to_json(s)); }

namespace {
// The table's median of each of child a's operators `ops` (SpecError naming `file` for one it lacks).
std::vector<double> medians_of(const LatencyTable& t, const std::vector<LatencyOp>& ops, const spec::Arch& a,
                               const std::string& file) {
  std::vector<double> ms;
  for (const auto& op : ops) {
    auto it = t.ops.find(op.key);
    NAS_CHECK(it != t.ops.end(), SpecError,
              file << ": ops: expected an entry for operator " << op.key << " of " << spec::arch_hash(a)
                   << ", found none (rebuild the table for this space with nas-benchmark --build-lut)");
    ms.push_back(it->second.median_ms);
  }
  return ms;
}
}  // namespace

std::vector<double> LatencyTable::op_ms(const spec::SearchSpace& s, const spec::Arch& a,
                                        const std::string& file) const {
  return medians_of(*this, arch_ops(s, a, in_channels, num_classes), a, file);
}

double LatencyTable::sum_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file) const {
  double sum = 0;
  for (double v : op_ms(s, a, file)) sum += v;
  return sum;
}

double LatencyTable::predict_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file) const {
  return sum_ms(s, a, file) + overhead_ms;
}

std::vector<std::string> latency_feature_names(const spec::SearchSpace& s) {
  std::vector<std::string> n = {"sum_ms"};
  for (const auto& part : ops_of(s).parts(s)) n.push_back(part + "_ms");
  // Weights too: a child's weights evict each other from the caches in the whole network, which
  // operators timed alone (weights hot) do not see.
  n.insert(n.end(), {"blocks", "mflops", "kilo_activations", "kilo_params", "one"});
  return n;
}

std::vector<double> latency_features(const LatencyTable& t, const spec::SearchSpace& s, const spec::Arch& a,
                                     const std::string& file) {
  const families::LatencyOps& lat = ops_of(s);
  const std::vector<std::string> parts = lat.parts(s);
  const std::vector<LatencyOp> ops = lat.of_child(s, a, t.in_channels, t.num_classes);
  const std::vector<double> ms = medians_of(t, ops, a, file);
  std::vector<double> part_ms(parts.size(), 0.0);
  double sum = 0, blocks = 0;
  // The sum over the operators that are no blocks first (mbconv's stem and head), then the blocks.
  for (bool block_pass : {false, true})
    for (size_t i = 0; i < ops.size(); ++i) {
      if (lat.is_block(ops[i]) != block_pass) continue;
      const auto part = std::find(parts.begin(), parts.end(), ops[i].part);
      NAS_CHECK(part != parts.end(), Error,
                "latency_features: operator " << ops[i].key << " is in part \"" << ops[i].part
                                              << "\", which the family's parts lack");
      part_ms[static_cast<size_t>(part - parts.begin())] += ms[i];
      sum += ms[i];
      blocks += block_pass ? 1 : 0;
    }
  auto c = families::arch_cost(s, a, t.in_channels, t.num_classes);
  std::vector<double> f = {sum};
  f.insert(f.end(), part_ms.begin(), part_ms.end());
  f.insert(f.end(), {blocks, c.mflops(), static_cast<double>(c.peak_activations) / 1000.0,
                     static_cast<double>(c.params) / 1000.0, 1.0});
  return f;
}

LatencyModel fit_latency_model(const std::vector<std::string>& names, const std::vector<std::vector<double>>& x,
                               const std::vector<double>& y) {
  NAS_CHECK(!x.empty() && x.size() == y.size(), Error, "fit_latency_model: expected as many targets as rows");
  NAS_CHECK(!names.empty() && names.size() <= 64, Error, "fit_latency_model: expected 1 to 64 features");
  const size_t d = std::min<size_t>(names.size(), 64);
  // Each feature scaled to unit RMS, then ridge-regularized normal equations, solved by Gaussian
  // elimination with partial pivoting (d is about 10).
  std::vector<double> scale(d, 0.0);
  for (const auto& r : x)
    for (size_t j = 0; j < d; ++j) scale[j] += r[j] * r[j];
  for (auto& v : scale) v = v > 0 ? std::sqrt(v / static_cast<double>(x.size())) : 1.0;
  // Minimizes the mean absolute relative error (what MAPE scores) by iteratively reweighted least
  // squares: row weights 1/(y * max(|residual|, 1% of y)), starting from 1/y^2 (least squares on
  // relative errors). Unlike squares, absolute errors let one child measured in a slow spell of
  // the machine pull the fit only as much as any other child. The weights are normalized to mean 1
  // so that the ridge keeps its strength.
  auto solve = [&](const std::vector<double>& wt) {
    std::vector<std::vector<double>> A(d, std::vector<double>(d + 1, 0.0));
    for (size_t i = 0; i < x.size(); ++i) {
      const double w = wt[i];
      for (size_t j = 0; j < d; ++j) {
        for (size_t k = 0; k < d; ++k) A[j][k] += w * x[i][j] / scale[j] * x[i][k] / scale[k];
        A[j][d] += w * x[i][j] / scale[j] * y[i];
      }
    }
    for (size_t j = 0; j < d; ++j) A[j][j] += 1e-3 * static_cast<double>(x.size());
    for (size_t c = 0; c < d; ++c) {
      size_t p = c;
      for (size_t r = c + 1; r < d; ++r)
        if (std::abs(A[r][c]) > std::abs(A[p][c])) p = r;
      std::swap(A[c], A[p]);
      for (size_t r = 0; r < d; ++r) {
        if (r == c || A[c][c] == 0) continue;
        double f = A[r][c] / A[c][c];
        for (size_t k = c; k <= d; ++k) A[r][k] -= f * A[c][k];
      }
    }
    std::vector<double> w(d);
    for (size_t j = 0; j < d; ++j) w[j] = A[j][j] != 0 ? A[j][d] / A[j][j] / scale[j] : 0.0;
    return w;
  };
  auto predict = [&](const std::vector<double>& w, size_t i) {
    double p = 0;
    for (size_t j = 0; j < d; ++j) p += w[j] * x[i][j];
    return p;
  };
  auto mape = [&](const std::vector<double>& w) {
    double ape = 0;
    for (size_t i = 0; i < x.size(); ++i) ape += std::abs(predict(w, i) - y[i]) / y[i];
    return ape / static_cast<double>(x.size());
  };
  auto normalized = [&](std::vector<double> wt) {
    double sum = 0;
    for (double v : wt) sum += v;
    for (auto& v : wt) v *= static_cast<double>(wt.size()) / sum;
    return wt;
  };
  for (double v : y) NAS_CHECK(v > 0, Error, "fit_latency_model: expected positive latencies, found " << v);
  std::vector<double> wt(x.size());
  for (size_t i = 0; i < x.size(); ++i) wt[i] = 1.0 / (y[i] * y[i]);
  std::vector<double> best = solve(normalized(wt));
  double best_mape = mape(best);
  std::vector<double> cur = best;
  for (int it = 0; it < 30; ++it) {
    for (size_t i = 0; i < x.size(); ++i) wt[i] = 1.0 / (y[i] * std::max(std::abs(predict(cur, i) - y[i]), 0.01 * y[i]));
    cur = solve(normalized(wt));
    const double m = mape(cur);
    if (m < best_mape - 1e-9) {
      best = cur;
      best_mape = m;
    } else if (it > 3) {
      break;
    }
  }
  LatencyModel m;
  m.features = names;
  m.weights = best;
  m.archs = static_cast<int>(x.size());
  m.fit_mape = best_mape;
  return m;
}

double LatencyTable::model_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file) const {
  NAS_CHECK(!model.empty(), UsageError, file << ": model: this table has no learned latency model (build it with "
                                                "nas-benchmark --build-lut --model-archs N)");
  auto f = latency_features(*this, s, a, file);
  NAS_CHECK(f.size() == model.weights.size(), SpecError,
            file << ": model.weights: expected " << f.size() << " weights, found " << model.weights.size());
  double p = 0;
  for (size_t j = 0; j < f.size(); ++j) p += model.weights[j] * f[j];
  return std::max(p, 1e-6);
}

spec::json to_json(const LatencyTable& t) {
  spec::json j;
  j["kind"] = kLutKind;
  j["schema_version"] = kLutVersion;
  j["space"] = t.space;
  j["space_hash"] = t.space_hash;
  j["input_channels"] = t.in_channels;
  j["classes"] = t.num_classes;
  j["batch"] = t.batch;
  j["context"] = spec::to_json(t.context);
  j["overhead_ms"] = t.overhead_ms;
  j["calibration"] = {{"archs", t.calibration_archs}, {"mape", t.calibration_mape}};
  j["build_seconds"] = t.build_seconds;
  j["rounds"] = t.rounds;
  j["ops"] = spec::json::object();
  for (const auto& [k, v] : t.ops)
    j["ops"][k] = {{"median_ms", v.median_ms}, {"p90_ms", v.p90_ms}, {"reps", v.reps}, {"noisy", v.noisy}};
  if (!t.model.empty())
    j["model"] = {{"features", t.model.features}, {"weights", t.model.weights}, {"archs", t.model.archs},
                  {"fit_mape", t.model.fit_mape}};
  else
    j["model"] = nullptr;
  return j;
}

LatencyTable latency_table_from_json(const spec::json& j, const std::string& file) {
  spec::Obj o(j, file, "");
  spec::check_header(o, kLutKind, kLutVersion);
  LatencyTable t;
  t.space = o.string("space");
  t.space_hash = o.string("space_hash");
  t.in_channels = static_cast<int>(o.integer("input_channels", 1, 4096));
  t.num_classes = static_cast<int>(o.integer("classes", 1, 1 << 24));
  t.batch = static_cast<int>(o.integer("batch", 1, 1 << 20));
  {
    spec::Obj c = o.object("context");
    t.context = spec::bench_context_from(c);
  }
  t.overhead_ms = o.number("overhead_ms", -1e9, 1e9);
  {
    spec::Obj c = o.object("calibration");
    t.calibration_archs = static_cast<int>(c.integer("archs", 0, 1 << 30));
    t.calibration_mape = c.number("mape", 0, 1e9);
    c.finish();
  }
  t.build_seconds = o.number_or("build_seconds", 0, 0, 1e12);
  t.rounds = static_cast<int>(o.integer_or("rounds", 1, 1, 1 << 20));
  {
    const spec::json& ops = o.raw("ops");
    if (!ops.is_object() || ops.empty()) o.fail("ops", "a non-empty mapping of operator keys to timings", ops);
    for (auto it = ops.begin(); it != ops.end(); ++it) {
      spec::Obj e(it.value(), file, "ops." + it.key());
      OpTiming v;
      v.median_ms = e.number("median_ms", 0, 1e9);
      v.p90_ms = e.number("p90_ms", 0, 1e9);
      v.reps = static_cast<int>(e.integer("reps", 1, 1 << 30));
      v.noisy = e.boolean("noisy");
      e.finish();
      t.ops[it.key()] = v;
    }
  }
  if (o.take("model")) {
    spec::Obj m = o.object("model");
    const spec::json& f = m.raw("features");
    if (!f.is_array()) m.fail("features", "a list of feature names", f);
    for (const auto& n : f) {
      if (!n.is_string()) m.fail("features", "a list of feature names", f);
      t.model.features.push_back(n.get<std::string>());
    }
    t.model.weights = m.numbers("weights", -1e12, 1e12);
    if (t.model.weights.size() != t.model.features.size())
      m.fail("weights", std::to_string(t.model.features.size()) + " weights (one per feature)", m.raw("weights"));
    t.model.archs = static_cast<int>(m.integer("archs", 1, 1 << 30));
    t.model.fit_mape = m.number("fit_mape", 0, 1e9);
    m.finish();
  }
  o.finish();
  return t;
}

LatencyTable load_latency_table(const std::string& path) {
  return latency_table_from_json(spec::load_document(path), path == "-" ? "<stdin>" : path);
}

void check_table_for(const LatencyTable& t, const spec::SearchSpace& s, int in_channels, int num_classes,
                     const std::string& file) {
  NAS_CHECK(t.space_hash == space_hash(s), SpecError,
            file << ": space_hash: expected a table for space \"" << s.name << "\" (" << space_hash(s)
                 << "), found one for \"" << t.space << "\" (" << t.space_hash << ")");
  NAS_CHECK(t.in_channels == in_channels && t.num_classes == num_classes, SpecError,
            file << ": input_channels, classes: expected " << in_channels << " and " << num_classes << ", found "
                 << t.in_channels << " and " << t.num_classes);
  if (!t.model.empty())
    NAS_CHECK(t.model.features == latency_feature_names(s), SpecError,
              file << ": model.features: expected the features of this version, found others (rebuild the table)");
}

}  // namespace nas::supernet
