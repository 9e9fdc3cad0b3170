// How well a latency table (nas.lut) predicts end-to-end latency: 100 (--archs) random children of
// its space, sampled with a seed of their own (none of them calibrated the table or fitted its
// model), each measured end to end like the table's operators, then compared with the table's sum
// plus overhead and with its learned model: MAPE, Spearman's rho and Kendall's tau. Driven by
// scripts/bench/latency_accuracy.sh; prints one JSON object.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "core/build_info.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rng.h"
#include "eval/lut.h"
#include "families/documents.h"
#include "families/sampling.h"
#include "search/predictor.h"
#include "supernet/latency_table.h"

using namespace nas;

namespace {
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {  // ties share their mean rank
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j);
    i = j + 1;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(a.size());
  mb /= static_cast<double>(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

spec::json scores(const std::vector<double>& pred, const std::vector<double>& meas) {
  double ape = 0, worst = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    double e = std::abs(pred[i] - meas[i]) / meas[i];
    ape += e;
    worst = std::max(worst, e);
  }
  return {{"mape", ape / static_cast<double>(pred.size())},
          {"max_ape", worst},
          {"spearman", pearson(ranks(pred), ranks(meas))},
          {"kendall_tau", search::kendall_tau(pred, meas)}};
}
}  // namespace

int main(int argc, char** argv) {
  std::string dump, lut, space_file = "configs/spaces/fmnist-mbconv.yaml", device = "cpu";
  int archs = 100, threads = 2, rounds = 3;
  uint64_t seed = 2026;
  double max_time = 10, min_time = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--lut") lut = v;
    else if (a == "--space") space_file = v;
    else if (a == "--archs") archs = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--seed") seed = std::stoull(v);
    else if (a == "--device") device = v;
    else if (a == "--max-time") max_time = std::stod(v);
    else if (a == "--min-time") min_time = std::stod(v);
    else if (a == "--dump") dump = v;
    else if (a == "--rounds") rounds = std::max(1, std::stoi(v));
    else lut.clear();  // unknown option: usage below
  }
  if (lut.empty() || argc % 2 == 0) {
    std::cerr << "usage: nas-bench-latency --lut FILE [--space FILE] [--archs N] [--threads N] [--seed S] [--device D] [--max-time S] [--rounds R] [--min-time S] [--dump FILE.jsonl]\n";
    return 2;
  }
  try {
    set_log_level(0);
    torch::set_num_threads(threads);
    if (!std::getenv("NAS_SYSTEM_MALLOC")) tune_allocator();  // as the tools do without --system-malloc
    auto t = supernet::load_latency_table(lut);
    const spec::SearchSpace space = families::load_search_space(space_file);
    supernet::check_table_for(t, space, t.in_channels, t.num_classes, lut);
    auto here = eval::machine_context(threads, device, "fp32");
    auto diff = spec::context_differences(t.context, here);
    for (const auto& d : diff) std::cerr << "nas-bench-latency: " << lut << ": built in another context: " << d << "\n";
    eval::LutOptions o;
    o.batch = t.batch;
    o.timing.max_seconds = max_time;
    o.timing.min_seconds = min_time;
    o.device = torch::Device(device);
    Rng rng(seed);
    std::vector<spec::Arch> children;
    std::vector<double> table, model;
    for (int i = 0; i < archs; ++i) {
      children.push_back(families::random_arch(space, rng));
      table.push_back(t.predict_ms(space, children.back(), lut));
      if (!t.model.empty()) model.push_back(t.model_ms(space, children.back(), lut));
    }
    // A child's latency is its median over the rounds, measured as the table's children are.
    // Round 2 against round 1 is the measurement's own agreement: the ceiling of any predictor.
    o.rounds = rounds;
    const eval::ChildRounds measured = eval::measure_children(space, children, t.in_channels, t.num_classes, o);
    const std::vector<double> meas = measured.medians();
    const int noisy = measured.noisy;
    auto round = [&](int r) {
      std::vector<double> v;
      for (const auto& child : measured.ms) v.push_back(child[static_cast<size_t>(r)]);
      return v;
    };
    if (!dump.empty()) {  // one line per child: its predictions and each round's median
      std::ofstream f(dump);
      for (size_t i = 0; i < children.size(); ++i) {
        spec::json row = {{"child", static_cast<int>(i)}, {"table_ms", table[i]}, {"measured_ms", meas[i]}};
        if (!model.empty()) row["model_ms"] = model[i];
        row["rounds_ms"] = measured.ms[i];
        f << row.dump() << "\n";
      }
    }
    spec::json r = {{"lut", lut},
                    {"space", space.name},
                    {"archs", archs},
                    {"noisy_measurements", noisy},
                    {"batch", t.batch},
                    {"device", device},
                    {"threads", threads},
                    {"measured_ms_median", eval::median(meas)},
                    {"lut_ops", t.ops.size()},
                    {"lut_build_seconds", t.build_seconds},
                    {"table", scores(table, meas)},
                    {"model", model.empty() ? spec::json(nullptr) : scores(model, meas)},
                    {"model_archs", t.model.archs},
                    {"rounds", rounds},
                    {"round2_vs_round1", rounds > 1 ? scores(round(1), round(0)) : spec::json(nullptr)},
                    {"context_differences", diff}};
    std::cout << r.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "nas-bench-latency: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
