#pragma once
// Latency lookup tables (nas.lut): every distinct operator a search space's children are made of
// (its family's families::LatencyOps, e.g. mbconv's stem, each inverted-residual block by its
// shape, its head), timed on one device. A child's predicted latency is the sum over its operators
// plus a fixed overhead calibrated against end-to-end measurements; an optional learned correction
// (LatencyModel) captures what the sum misses. Torch-free: the timing lives in eval/lut.h.
#include <map>
#include <string>
#include <vector>

#include "families/latency_ops.h"
#include "spec/arch.h"
#include "spec/bench_result.h"
#include "spec/document.h"
#include "spec/search_space.h"

namespace nas::supernet {

inline constexpr const char* kLutKind = "nas.lut";
inline constexpr int kLutVersion = 1;

using LatencyOp = families::LatencyOp;

// The operators of one child, in order. These two throw UsageError for a family without operators.
std::vector<LatencyOp> arch_ops(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes);
// Every distinct operator any child of the space can have, sorted by key.
std::vector<LatencyOp> space_ops(const spec::SearchSpace& s, int in_channels, int num_classes);
// Stable hash of the space's canonical JSON: a table is valid for exactly one space.
std::string space_hash(const spec::SearchSpace& s);

struct OpTiming {
  double median_ms = 0, p90_ms = 0;
  int reps = 0;
  bool noisy = false;
};

// A linear correction of the table's sum, fitted on measured end-to-end latencies of sampled
// children (least squares with a small ridge): latency = w . features(child).
struct LatencyModel {
  std::vector<std::string> features;  // names, see latency_features()
  std::vector<double> weights;
  int archs = 0;                      // children it was fitted on
  double fit_mape = 0;                // on those children
  bool empty() const { return weights.empty(); }
};

struct LatencyTable {
  std::string space;       // name
  std::string space_hash;  // of the space it was built for
  int in_channels = 1, num_classes = 10;
  int batch = 1;
  spec::BenchContext context;
  std::map<std::string, OpTiming> ops;
  double overhead_ms = 0;      // calibrated: mean of (measured - sum) over the calibration children
  int calibration_archs = 0;
  double calibration_mape = 0;  // of sum + overhead on the calibration children
  double build_seconds = 0;
  int rounds = 1;               // passes over the operators and children (each kept its median)
  LatencyModel model;           // optional

  // Sum of the child's operators plus the overhead. SpecError (naming `file`) when an operator is
  // missing: the table is for another space or incomplete.
  double predict_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file = "the table") const;
  double sum_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file = "the table") const;
  // Each operator's median, in arch_ops order (the same SpecError).
  std::vector<double> op_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file = "the table") const;
  // The learned model's prediction (UsageError when the table has none).
  double model_ms(const spec::SearchSpace& s, const spec::Arch& a, const std::string& file = "the table") const;
};

// Features of the learned model: the table's sum, its parts (LatencyOps::parts: mbconv's stem,
// head and each stage), the block count, MFLOPs, peak activations and params (thousands) and a constant.
std::vector<std::string> latency_feature_names(const spec::SearchSpace& s);
std::vector<double> latency_features(const LatencyTable& t, const spec::SearchSpace& s, const spec::Arch& a,
                                     const std::string& file);
// Fits the model on (features, measured ms); MAPE on the same points in fit_mape.
LatencyModel fit_latency_model(const std::vector<std::string>& names, const std::vector<std::vector<double>>& x,
                               const std::vector<double>& y);

spec::json to_json(const LatencyTable& t);
LatencyTable latency_table_from_json(const spec::json& j, const std::string& file);
LatencyTable load_latency_table(const std::string& path);
// SpecError naming `file` when `t` was built for another space (or input size, or class count).
void check_table_for(const LatencyTable& t, const spec::SearchSpace& s, int in_channels, int num_classes,
                     const std::string& file);

}  // namespace nas::supernet
