#include <torch/torch.h>

#include <sstream>

#include "app/app_data.h"
#include "app/apps.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "search/estimators.h"
#include "search/search.h"
#include "supernet/checkpoint.h"

namespace nas::app {

const cli::ToolInfo kSearchTool{
    "nas-search",
    "Search a trained supernet for the most accurate children under FLOPs and/or params bounds.\n"
    "Each candidate is scored with inherited weights after BN recalibration on a fixed, seeded subset\n"
    "of training images, by top-1 accuracy on the validation split; scores are cached by arch hash.\n"
    "Writes nas.search JSON: every candidate, the best and the accuracy-vs-MFLOPs Pareto front.",
    "nas-search --supernet runs/fmnist/supernet.ckpt --max-mflops 5 --budget 60 --out runs/fmnist/search.json "
    "--csv runs/fmnist/pareto.csv --best-arch runs/fmnist/best.json"};

void add_search_options(CLI::App& app, SearchOptions& o) {
  app.add_option("--supernet", o.supernet, "Supernet checkpoint")->required();
  app.add_option("--out", o.out, "nas.search JSON output ('-' for stdout)")->default_val("-");
  app.add_option("--csv", o.csv, "Also write every candidate as CSV (pareto column marks the front)");
  app.add_option("--best-arch", o.best_arch, "Also write the best child as a nas.arch file");
  app.add_option("--metrics", o.metrics, "Append one JSON line per evaluated candidate to this file");
  app.add_option("--data", o.data, "Dataset directory (default: the one the supernet was trained on)");
  app.add_option("--strategy", o.strategy, "coarse-to-fine (BigNAS) or random")
      ->check(CLI::IsMember(search::strategy_names()))
      ->default_val("coarse-to-fine");
  app.add_option("--budget", o.budget, "Number of candidates to evaluate")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->default_val(50);
  app.add_option("--max-mflops", o.max_mflops, "Upper bound on MFLOPs (multiply-adds / 1e6); 0: none")
      ->check(CLI::Range(0.0, 1e12));
  app.add_option("--max-params", o.max_params, "Upper bound on parameters; 0: none")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--val-images", o.val_images, "Validation images per candidate (0: the whole split)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--calib-images", o.calib_images, "BN calibration images (default: the train spec's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--eval-batch", o.eval_batch, "Batch size for evaluation")->check(CLI::Range(1, 65536));
  cli::add_common_options(app, o.common);
}

namespace {
int64_t est_calls(const spec::SearchResult& r) {
  int64_t n = 0;
  for (const auto& c : r.candidates) n += c.evaluated;
  return n;
}

std::string to_csv(const spec::SearchResult& r) {
  std::vector<bool> on_front(r.candidates.size(), false);
  for (int i : r.pareto) on_front[i] = true;
  std::ostringstream os;
  os << "index,hash,feasible,evaluated,mflops,params,val_acc,val_loss,origin,pareto\n";
  for (const auto& c : r.candidates) {
    os << c.index << "," << c.hash << "," << c.feasible << "," << c.evaluated << "," << c.mflops << "," << c.params
       << "," << c.val_acc << "," << c.val_loss << "," << c.origin << "," << on_front[c.index] << "\n";
  }
  return os.str();
}
}  // namespace

void run_search(const SearchOptions& o) {
  cli::apply_common_options(o.common);
  for (const auto& p : {o.out, o.csv, o.best_arch, o.metrics})
    if (!p.empty() && p != "-") check_output_path(p);
  auto loaded = supernet::load_supernet(o.supernet);
  auto& meta = loaded.meta;
  if (!meta.finished)
    log_warn(o.supernet + ": training has not finished (step " + std::to_string(meta.step) + " of " +
             std::to_string(meta.total_steps) + ")");
  auto& net = loaded.net;
  search::CostFn cost = [&](const spec::Arch& a) { return net->cost(a); };
  spec::Constraints constraints;
  constraints.max_mflops = o.max_mflops;
  constraints.max_params = o.max_params;
  search::check_satisfiable(meta.space, cost, constraints);
  torch::Device device(o.common.device);
  net->to(device);
  auto d = load_checkpoint_data(meta.train, o.data, o.calib_images, meta.in_channels, meta.num_classes);
  uint64_t seed = o.common.seed_given ? o.common.seed : meta.train.seed;
  std::vector<int64_t> val = data::seeded_subset(d.split.val, o.val_images, mix_seed(seed, 0x7a1));
  NAS_CHECK(!val.empty(), SpecError,
            o.supernet << ": the supernet's train spec holds out no validation images (data.validation_images: 0)");
  search::InheritedEstimator est(loaded.net, d.train, d.calib, val, d.norm, meta.train.calib_batch_size,
                                 o.eval_batch, device);
  search::SearchOptions so;
  so.strategy = o.strategy;
  so.budget = o.budget;
  so.constraints = constraints;
  so.seed = seed;
  std::unique_ptr<JsonlWriter> metrics;
  if (!o.metrics.empty()) {
    so.on_evaluated = [&](const spec::Candidate& c) {
      if (!metrics) metrics = std::make_unique<JsonlWriter>(o.metrics, true);  // nothing until a result exists
      metrics->write_line(spec::compact_dump(spec::json({{"index", c.index},
                                      {"hash", c.hash},
                                      {"origin", c.origin},
                                      {"mflops", c.mflops},
                                      {"params", c.params},
                                      {"val_acc", c.val_acc},
                                      {"val_loss", c.val_loss},
                                      {"eval_seconds", c.eval_seconds}})));
    };
  }
  log_info("search: " + o.strategy + ", budget " + std::to_string(o.budget) + ", " + std::to_string(val.size()) +
           " validation images, " + std::to_string(d.calib.size()) + " calibration images");
  spec::SearchResult r = search::run_search(meta.space, cost, est, so);
  r.supernet = o.supernet;
  r.val_images = static_cast<int64_t>(val.size());
  r.calib_images = static_cast<int64_t>(d.calib.size());
  if (r.best >= 0) {
    const auto& b = r.candidates[r.best];
    char line[256];
    std::snprintf(line, sizeof line, "best %s: val acc %.4f, %.3f MFLOPs, %lld params (%lld candidates, %.1f s)",
                  b.hash.c_str(), b.val_acc, b.mflops, static_cast<long long>(b.params),
                  static_cast<long long>(r.candidates.size()), r.total_seconds);
    log_info(line);
  } else {
    log_warn("no feasible candidate was evaluated");
  }
  NAS_CHECK(o.best_arch.empty() || r.best >= 0, Error, "--best-arch: no feasible candidate was evaluated");
  // Side outputs first, the main output last.
  if (!o.csv.empty()) write_output(o.csv, to_csv(r));
  if (!o.best_arch.empty()) write_output(o.best_arch, spec::canonical_dump(spec::to_json(r.candidates[r.best].arch)));
  write_output(o.out, spec::canonical_dump(spec::to_json(r)));
  NAS_CHECK(!r.interrupted, Interrupted,
            "search interrupted after " << est_calls(r) << " evaluations; partial results written to " << o.out);
}

}  // namespace nas::app
