#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "app/app_data.h"
#include "app/apps.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "dist/dist.h"
#include "eval/benchmark.h"
#include "eval/evaluate.h"
#include "eval/lut.h"
#include "families/cell/cell.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/modules.h"
#include "search/darts.h"
#include "search/estimators.h"
#include "search/external.h"
#include "search/hyperband.h"
#include "search/plot.h"
#include "search/predictor.h"
#include "search/search.h"
#include "search/zero_cost.h"
#include "supernet/checkpoint.h"
#include "supernet/latency_table.h"

namespace nas::app {

const cli::ToolInfo kSearchTool{
    "nas-search",
    "Search a trained supernet for the most accurate children under FLOPs and/or params bounds.\n"
    "Each candidate is scored with inherited weights after BN recalibration on a fixed, seeded subset\n"
    "of training images, by top-1 accuracy on the validation split; scores are cached by arch hash.\n"
    "Writes nas.search JSON: every candidate, the best and the accuracy-vs-MFLOPs Pareto front.",
    "nas-search --supernet runs/fmnist/supernet.ckpt --max-mflops 5 --budget 60 --out runs/fmnist/search.json "
    "--csv runs/fmnist/pareto.csv --best-arch runs/fmnist/best.json"};

SearchToolOptions::SearchToolOptions() {
  const search::SearchOptions engine;
  strategy = engine.strategy;
  budget = engine.budget;
  curve_margin = search::kCurveMargin;
}

namespace {
// What is searched and how its candidates are scored.
void add_scoring_options(CLI::App& app, SearchToolOptions& o) {
  app.add_option("--supernet", o.supernet, "Supernet checkpoint (its space is searched)");
  app.add_option(
      "--space", o.space,
      "Search space to search without a supernet: a space of a family (with --evaluator, --predictor-from or "
      "a training estimator), or a generic one (family: generic, named decisions; with --evaluator or "
      "--predictor-from)");
  app.add_option("--evaluator", o.evaluator,
                 "Score candidates with this command instead of inherited weights: it reads the nas.arch JSON "
                 "on stdin and prints JSON with \"accuracy\" (in [0, 1]) and optionally \"loss\" on stdout; "
                 "a failure is recorded for that candidate. In a generic space, constraints apply to the "
                 "\"mflops\", \"params\", \"memory_mib\" and \"latency_ms\" it prints");
  app.add_option("--estimator", o.estimator,
                 "inherited (supernet weights, BN recalibrated), low-fidelity (a few epochs from scratch, on a "
                 "subset and/or at a lower resolution), learning-curve (stops children whose extrapolated "
                 "curve cannot catch up) or zero-cost (a --proxy, no training); --evaluator and --predictor-from "
                 "select theirs")
      ->check(CLI::IsMember({"inherited", "low-fidelity", "learning-curve", "zero-cost", "predictor", "external"}))
      ->capture_default_str();
  app.add_option("--proxy", o.proxy,
                 "zero-cost: synflow, grad-norm, snip, jacov or nwot (default synflow); with --prescreen: screen "
                 "children by this proxy instead of the accuracy predictor");
  app.add_option("--proxy-weights", o.proxy_weights,
                 "zero-cost proxies on the child's initial weights (init) or those sliced from --supernet "
                 "(inherited; the default with --supernet)")
      ->check(CLI::IsMember({"init", "inherited"}));
  app.add_option("--proxy-batch", o.proxy_batch, "Images of the zero-cost proxies' fixed, seeded batch")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--train", o.train, "With --space: the nas.train spec low-fidelity training uses");
  app.add_option("--lf-epochs", o.lf_epochs, "low-fidelity: epochs per child")->check(CLI::Range(1, 10000))->capture_default_str();
  app.add_option("--lf-images", o.lf_images, "low-fidelity, learning-curve: training images per child (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--lf-resolution", o.lf_resolution,
                 "low-fidelity, learning-curve: train and evaluate at this input resolution (0: the child's own)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_option("--curve-epochs", o.curve_epochs, "learning-curve: epochs of a child trained to the end")
      ->check(CLI::Range(4, 10000))
      ->capture_default_str();
  app.add_option("--curve-observe", o.curve_observe, "learning-curve: epochs observed before extrapolating")
      ->check(CLI::Range(3, 10000))
      ->capture_default_str();
  app.add_option("--curve-margin", o.curve_margin,
                 "learning-curve: stop a child extrapolated below the best final accuracy minus this")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--predictor-from", o.predictor_from,
                 "Score candidates with an accuracy predictor (MLP ensemble) learnt from the evaluated candidates "
                 "of these nas.search files, instead of inherited weights");
  app.add_flag("--prescreen", o.prescreen,
               "Pre-screen candidates with an accuracy predictor learnt from the evaluations so far: those "
               "predicted below the median are recorded as screened and cost no evaluation");
  app.add_option("--eval-timeout", o.eval_timeout, "Seconds before an --evaluator call is killed")
      ->check(CLI::Range(0.001, 1e7))
      ->capture_default_str();
  app.add_option("--input-channels", o.input_channels, "With --space: input channels, for the cost model")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--classes", o.classes, "With --space: number of classes (1: a regression target), for the cost model")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
}

// Where the results go.
void add_output_options(CLI::App& app, SearchToolOptions& o) {
  app.add_option("--out", o.out, "nas.search JSON output ('-' for stdout)")->capture_default_str();
  app.add_option("--csv", o.csv, "Also write every candidate as CSV (pareto column marks the front)");
  app.add_option("--best-arch", o.best_arch, "Also write the best child as a nas.arch file");
  app.add_option("--plot", o.plot, "Also draw the accuracy-vs-MFLOPs and -params fronts as a PNG (needs gnuplot); with --objectives also "
                 "the hypervolume against evaluations");
  app.add_option("--metrics", o.metrics, "Append one JSON line per evaluated candidate to this file");
  app.add_option("--data", o.data, "Dataset directory (default: the one the supernet was trained on)");
}

// The strategy and its settings.
void add_strategy_options(CLI::App& app, SearchToolOptions& o) {
  app.add_option("--strategy", o.strategy,
                 "coarse-to-fine (BigNAS), random, grid, evolution (regularized), hill-climbing, reinforce, mcts, "
                 "tpe (tree-structured Parzen estimator), nsga2 (multi-objective: --objectives), bayesian "
                 "(Gaussian process + expected improvement), ehvi (multi-objective: a Gaussian process per objective "
                 "+ expected hypervolume improvement); hyperband (successive halving of --estimator "
                 "low-fidelity over epochs: --hb-*); darts (cell spaces: continuous relaxation "
                 "of the supernet, bi-level optimization, then the derived child and, within --budget, the next most "
                 "likely ones, each scored by the estimator)")
      ->check(CLI::IsMember([] {
        auto n = search::strategy_names();
        n.push_back("hyperband");
        n.push_back("darts");
        return n;
      }()))
      ->capture_default_str();
  app.add_option("--budget", o.budget, "Number of candidates to evaluate")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--time-budget", o.time_budget, "Stop starting new evaluations after this many seconds (0: none)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  const search::StrategyOptions lib;
  app.add_option("--population", o.population,
                 "evolution, nsga2: population size (default: " + std::to_string(lib.population) + " and " +
                     std::to_string(lib.nsga2_population) + "; --resume: the stopped search's)")
      ->check(CLI::Range(2, 1 << 20));
  app.add_option("--sample-size", o.sample_size, "evolution: tournament sample size")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--mutation-prob", o.mutation_prob, "Probability that a mutation moves each decision")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_flag("--crossover", o.crossover, "evolution: cross the two best of the sample before mutating");
  app.add_option("--bo-init", o.bo_init,
                 "bayesian, ehvi: random children before the Gaussian processes (0: max(5, min(10, budget / 10)))")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--tpe-startup", o.tpe_startup, "tpe: random children (feasible ones) before the densities")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--tpe-gamma", o.tpe_gamma, "tpe: the good group is the best ceil(gamma * n) children, at most 25")
      ->check(CLI::Range(0.001, 1.0))
      ->capture_default_str();
  app.add_option("--tpe-candidates", o.tpe_candidates, "tpe: samples from the good density per proposal")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--hb-min-epochs", o.hb_min_epochs, "hyperband: the fewest epochs a child is trained for")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--hb-max-epochs", o.hb_max_epochs,
                 "hyperband: the most epochs (the top fidelity: only children trained this long make the front)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--hb-eta", o.hb_eta, "hyperband: each rung keeps the best 1/eta, trained eta times longer")
      ->check(CLI::Range(2, 1 << 10))
      ->capture_default_str();
  app.add_flag("--tpe-independent", o.tpe_independent,
               "tpe: one density per decision instead of one joint density over all of them");
  app.add_option("--darts-steps", o.darts_steps, "darts: bi-level steps (one architecture and one weight step each)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--darts-batch", o.darts_batch, "darts: batch size of both steps")
      ->check(CLI::Range(2, 1 << 16))
      ->capture_default_str();
  app.add_option("--darts-order", o.darts_order,
                 "darts: 1 (first-order architecture gradient) or 2 (through one unrolled weight step)")
      ->check(CLI::IsMember({1, 2}))
      ->capture_default_str();
  app.add_option("--darts-alpha-lr", o.darts_alpha_lr, "darts: Adam learning rate of the architecture weights")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  app.add_option("--darts-w-lr", o.darts_w_lr,
                 "darts: SGD learning rate of the network weights (a copy of the supernet's; also the unrolled step)")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  app.add_flag("--resume", o.resume,
               "Continue the stopped search recorded in --out (its evaluations are replayed, not re-estimated)");
}

// Objectives, bounds, latency and the images each candidate is scored on.
void add_bound_options(CLI::App& app, SearchToolOptions& o) {
  app.add_option("--objectives", o.objectives,
                 "Multi-objective search: two or three of accuracy (maximized), mflops, params, latency_ms, "
                 "memory_mib (minimized), comma-separated; nas.search records their front and its hypervolume "
                 "(--strategy nsga2 and ehvi select by them; their default: accuracy,mflops)")
      ->delimiter(',');
  app.add_option("--hv-reference", o.hv_reference,
                 "The hypervolume's reference point, one value per objective in its own units (accuracy as a "
                 "fraction), comma-separated (default: accuracy 0 and each cost's bound, else the largest child's); "
                 "ehvi proposes the children that add most inside it")
      ->delimiter(',');
  app.add_option("--max-mflops", o.max_mflops, "Upper bound on MFLOPs (multiply-adds / 1e6); 0: none")
      ->check(CLI::Range(0.0, 1e12));
  app.add_option("--max-params", o.max_params, "Upper bound on parameters; 0: none")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--max-memory-mib", o.max_memory_mib,
                 "Upper bound on inference memory at batch 1 (weights + peak activations, fp32, analytic), MiB; 0: none")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--max-latency-ms", o.max_latency_ms,
                 "Upper bound on batch-1 latency measured on this machine (--threads, --device), ms; 0: none")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--latency-table", o.latency_table,
                 "A nas.lut from nas-benchmark --build-lut: --max-latency-ms and the latency front use its predictions "
                 "(sum of operators plus overhead) instead of measuring; warns when it was built in another context");
  app.add_flag("--latency-model", o.latency_model, "With --latency-table: predict with its learned model");
  app.add_option("--val-images", o.val_images, "Validation images per candidate (0: the whole split)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--calib-images", o.calib_images, "BN calibration images (default: the train spec's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--eval-batch", o.eval_batch, "Batch size for evaluation (0: 64 on CPU, 512 on CUDA)")
      ->check(CLI::Range(0, 65536))
      ->capture_default_str();
}
}  // namespace

void add_search_tool_options(CLI::App& app, SearchToolOptions& o) {
  add_scoring_options(app, o);
  add_output_options(app, o);
  add_strategy_options(app, o);
  add_bound_options(app, o);
  cli::add_common_options(app, o.common);
  cli::add_distributed_options(app, o.common);
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
  os << "index,hash,feasible,evaluated,mflops,params,val_acc,val_loss,origin,pareto,error\n";
  for (const auto& c : r.candidates) {
    std::string err = c.error;
    for (size_t i = 0; (i = err.find('"', i)) != std::string::npos; i += 2) err.insert(i, "\"");
    os << c.index << "," << c.hash << "," << c.feasible << "," << c.evaluated << "," << c.mflops << "," << c.params
       << "," << c.val_acc << "," << c.val_loss << "," << c.origin << "," << on_front[c.index] << ","
       << (err.empty() ? "" : "\"" + err + "\"") << "\n";
  }
  return os.str();
}
}  // namespace

namespace {
// --strategy darts: the relaxation on a copy of the supernet (the estimator keeps the trained
// weights), weights on one half of the training split, architecture on the other (both seeded);
// then so.make_strategy proposes the derived children, most likely first. Returns the report that
// nas.search records as "relaxation".
// A resumed search (`previous` holds the stopped search's report) proposes the children it derived
// then: rerunning the relaxation would not reproduce them bit for bit on a GPU.
spec::json run_darts_phase(const SearchToolOptions& o, const spec::SearchSpace& space, const search::ArchEncoding& enc,
                           uint64_t seed, search::SearchOptions& so, const spec::json& previous) {
  NAS_CHECK(!o.supernet.empty() && families::of(space).has_relaxation(), UsageError,
            "--strategy darts: needs --supernet, a supernet of a cell space (family cell)"
                << (o.supernet.empty() ? "" : "; \"" + space.name + "\" is family " + space.family));
  auto propose = [&so](std::vector<search::Genotype> children) {
    so.make_strategy = [children]() { return search::make_list_strategy("darts", children, "darts", "darts-next"); };
  };
  if (previous.is_object() && previous.contains("children") && previous["children"].is_array()) {
    std::vector<search::Genotype> children;
    for (const auto& c : previous["children"]) children.push_back(enc.from_json(c, o.out + " (relaxation.children)"));
    NAS_CHECK(!children.empty(), SpecError, o.out << ": relaxation.children: expected the derived children, found none");
    log_info("darts: the " + std::to_string(children.size()) + " derived children of the recorded relaxation");
    propose(children);
    return previous;
  }
  auto loaded = supernet::load_supernet(o.supernet);
  const auto& meta = loaded.meta;
  CheckpointData d = load_checkpoint_data(meta.train, o.data, 1, meta.in_channels, meta.num_classes, meta.image_size);
  std::vector<int64_t> pool = d.split.train;
  Rng rng(mix_seed(seed, 0xda275));
  rng.shuffle(pool);
  std::vector<int64_t> a_idx(pool.begin(), pool.begin() + static_cast<std::ptrdiff_t>(pool.size() / 2));
  std::vector<int64_t> w_idx(pool.begin() + static_cast<std::ptrdiff_t>(pool.size() / 2), pool.end());
  search::DartsOptions dop;
  const auto& so_ = so.strategy_options;
  dop.steps = so_.darts_steps;
  dop.batch_size = so_.darts_batch;
  dop.second_order = so_.darts_second_order;
  dop.alpha_lr = so_.darts_alpha_lr;
  dop.w_lr = so_.darts_w_lr;
  dop.seed = seed;
  dop.crop_padding = meta.train.data.crop_padding;
  dop.hflip = meta.train.data.hflip;
  dop.norm = d.norm;
  dop.device = torch::Device(o.common.device);
  loaded.net->to(dop.device);
  log_info("darts: " + std::to_string(dop.steps) + " bi-level steps (" + (dop.second_order ? "second" : "first") +
           " order), weights on " + std::to_string(w_idx.size()) + " images, architecture on " +
           std::to_string(a_idx.size()));
  Progress progress("darts", dop.steps, "step");
  auto rep = search::run_darts(loaded.net, d.train, w_idx, a_idx, dop, [&](int64_t s) { progress.update(s); });
  progress.finish(dop.steps);
  // 20 children per evaluation of the budget (infeasible ones cost no evaluation: the derived cell
  // may exceed a bound that its less likely neighbours meet), 100 to 1000 (the best-first
  // enumeration holds every child's successors).
  const size_t k = static_cast<size_t>(std::clamp<int64_t>(20 * o.budget, 100, 1000));
  auto children = search::darts_derive(enc, rep.normal_weights, rep.reduce_weights, k);
  const spec::Arch derived = enc.decode(children.front());
  log_info("darts: derived " + families::arch_summary(derived) +
           " (" + std::to_string(rep.seconds) + " s)");
  auto matrix = [](const torch::Tensor& w) {
    spec::json rows = spec::json::array();
    for (int64_t e = 0; e < w.size(0); ++e) {
      spec::json row = spec::json::array();
      for (int64_t k2 = 0; k2 < w.size(1); ++k2) row.push_back(w[e][k2].item<double>());
      rows.push_back(row);
    }
    return rows;
  };
  auto tail_mean = [](const std::vector<double>& v) {
    const size_t n = std::min<size_t>(v.size(), 20);
    double s = 0;
    for (size_t i = v.size() - n; i < v.size(); ++i) s += v[i];
    return n ? s / static_cast<double>(n) : 0.0;
  };
  spec::json report = {{"ops", families::cell::space_of(space).ops},
                       {"normal_weights", matrix(rep.normal_weights)},
                       {"reduce_weights", matrix(rep.reduce_weights)},
                       {"derived", spec::to_json(derived)},
                       {"train_loss_last20", tail_mean(rep.train_loss)},
                       {"val_loss_last20", tail_mean(rep.val_loss)},
                       {"seconds", rep.seconds}};
  report["children"] = spec::json::array();
  for (const auto& g : children) report["children"].push_back(enc.to_json(g));
  propose(children);
  return report;
}

}  // namespace

namespace {
// How the candidates are scored, as the flags ask (the checks that involve the estimator's flags alone).
struct EstimatorChoice {
  std::string kind;  // inherited, low-fidelity, learning-curve, zero-cost, predictor or external
  bool external = false;   // --evaluator
  bool predicted = false;  // --predictor-from
  bool trains = false;     // low-fidelity, learning-curve
  bool proxies = false;    // zero-cost, or --prescreen --proxy
  std::string proxy_weights;  // init or inherited, with proxies
};

EstimatorChoice choose_estimator(const SearchToolOptions& o) {
  EstimatorChoice c;
  c.external = !o.evaluator.empty();
  c.predicted = !o.predictor_from.empty();
  NAS_CHECK(!(c.external && c.predicted), UsageError, "give one of --evaluator and --predictor-from");
  c.kind = c.external ? "external" : c.predicted ? "predictor" : o.estimator;
  NAS_CHECK(o.estimator == "inherited" || o.estimator == c.kind, UsageError,
            "--estimator " << o.estimator << ": " << (c.external ? "--evaluator" : "--predictor-from")
                           << " scores the candidates; drop one of them");
  NAS_CHECK(c.kind != "external" || c.external, UsageError, "--estimator external needs --evaluator CMD");
  NAS_CHECK(c.kind != "predictor" || c.predicted, UsageError, "--estimator predictor needs --predictor-from FILE");
  c.trains = c.kind == "low-fidelity" || c.kind == "learning-curve";
  c.proxies = c.kind == "zero-cost" || (o.prescreen && !o.proxy.empty());
  c.proxy_weights = !c.proxies ? "" : !o.proxy_weights.empty() ? o.proxy_weights : o.supernet.empty() ? "init" : "inherited";
  NAS_CHECK(o.proxy.empty() || c.proxies, UsageError, "--proxy: give --estimator zero-cost or --prescreen too");
  if (!o.proxy.empty()) search::check_proxy(o.proxy);
  NAS_CHECK(o.proxy_weights.empty() || c.proxies, UsageError,
            "--proxy-weights: give --estimator zero-cost, or --prescreen with --proxy");
  NAS_CHECK(o.strategy != "hyperband" || !o.prescreen, UsageError,
            "--prescreen: hyperband screens by training briefly; drop one of them");
  NAS_CHECK(!c.proxies || !o.supernet.empty() || !o.train.empty(), UsageError,
            "zero-cost proxies read a batch of training images: give --train (a nas.train spec) or --supernet");
  NAS_CHECK(c.proxy_weights != "inherited" || !o.supernet.empty(), UsageError,
            "--proxy-weights inherited: needs --supernet");
  NAS_CHECK(!o.supernet.empty() || (!o.space.empty() && c.kind != "inherited"), UsageError,
            "give --supernet, or --space with another estimator than inherited weights");
  NAS_CHECK(o.supernet.empty() || o.space.empty(), UsageError,
            "--space: the supernet's own space is searched; give one of --supernet and --space");
  NAS_CHECK(!c.trains || !o.supernet.empty() || !o.train.empty(), UsageError,
            "--estimator " << c.kind << " trains children: give --train (a nas.train spec) or --supernet (its spec)");
  return c;
}

// The space searched and what its cost model and estimators need: from the supernet, or from
// --space and the flags.
struct SearchedSpace {
  spec::SearchSpace space;                           // empty for a generic space
  std::unique_ptr<search::GenericEncoding> generic;  // a generic space (--space): named decisions
  std::unique_ptr<search::ArchEncoding> arch_encoding;  // otherwise
  int in_channels = 1, num_classes = 10;
  uint64_t seed = 0;             // --seed, else the supernet's or --train's
  spec::TrainSpec train_spec;    // --train, else the supernet's; its seed is --seed when given
  supernet::LoadedSupernet loaded;  // the supernet's weights, when an estimator uses them
  const search::Encoding& encoding() const {
    return generic ? static_cast<const search::Encoding&>(*generic) : *arch_encoding;
  }
};

void read_supernet(const SearchToolOptions& o, const EstimatorChoice& how, SearchedSpace& s) {
  const bool weights = how.kind == "inherited" || how.proxy_weights == "inherited";
  auto meta = weights ? (s.loaded = supernet::load_supernet(o.supernet)).meta : supernet::read_checkpoint_meta(o.supernet);
  if (o.train.empty()) s.train_spec = meta.train;
  if (!meta.finished)
    log_warn(o.supernet + ": training has not finished (step " + std::to_string(meta.step) + " of " +
             std::to_string(meta.total_steps) + ")");
  s.space = meta.space;
  s.in_channels = meta.in_channels;
  s.num_classes = meta.num_classes;
  if (!o.common.seed_given) s.seed = meta.train.seed;
}

void read_space_file(const SearchToolOptions& o, const EstimatorChoice& how, SearchedSpace& s) {
  spec::json doc = spec::load_document(o.space);
  if (search::space_family(doc) == spec::kGenericFamily) {
    // Named decisions scored by the user's program: no network, so no analytic cost.
    NAS_CHECK(how.external || how.predicted, UsageError,
              o.space << ": a generic space is scored by --evaluator CMD or --predictor-from FILE, not by --estimator "
                      << how.kind);
    NAS_CHECK(o.max_latency_ms <= 0 || how.external, UsageError,
              "--max-latency-ms: a generic space's latency is what --evaluator reports as \"latency_ms\"");
    NAS_CHECK(how.external || (o.max_mflops <= 0 && o.max_params <= 0 && o.max_memory_mib <= 0), UsageError,
              "--max-mflops, --max-params, --max-memory-mib: a generic space's costs are what --evaluator reports; "
              "--predictor-from reports none");
    s.generic = search::generic_space_from_json(doc, o.space);
  } else {
    s.space = families::search_space_from_json(doc, o.space == "-" ? "<stdin>" : o.space);
  }
  if (!o.train.empty() && !o.common.seed_given) s.seed = s.train_spec.seed;
}

SearchedSpace load_searched_space(const SearchToolOptions& o, const EstimatorChoice& how) {
  SearchedSpace s;
  s.in_channels = o.input_channels;
  s.num_classes = o.classes;
  s.seed = o.common.seed_given ? o.common.seed : 0;
  if (!o.train.empty()) s.train_spec = spec::load_train_spec(o.train);
  if (!o.supernet.empty())
    read_supernet(o, how, s);
  else
    read_space_file(o, how, s);
  // --seed seeds what trains or initializes children too (lower fidelity, zero-cost at init weights).
  if (o.common.seed_given) s.train_spec.seed = o.common.seed;
  if (!s.generic) s.arch_encoding = std::make_unique<search::ArchEncoding>(s.space);
  return s;
}

// Measured latency: the child as a standalone network (latency does not depend on the weights), at
// batch 1, timed like a latency table's children: the median of at least kLatencyRuns runs and
// kLatencySeconds after kLatencyWarmup warm-ups.
constexpr int kLatencyWarmup = 3, kLatencyRuns = 10;
constexpr double kLatencySeconds = 0.05;

search::LatencyFn measured_latency(const SearchToolOptions& o, const SearchedSpace& s) {
  eval::LutOptions lat;
  lat.timing.warmup = kLatencyWarmup;
  lat.timing.min_reps = kLatencyRuns;
  lat.timing.ci = 0;
  lat.timing.min_seconds = kLatencySeconds;
  lat.timing.max_seconds = 1e30;
  lat.timing.max_reps = 1000;
  lat.device = torch::Device(o.common.device);
  return [space = s.space, in = s.in_channels, classes = s.num_classes, lat](const spec::Arch& a) {
    return eval::measure_child(space, a, in, classes, lat).median_ms;
  };
}

// --latency-table: the table's prediction (its sum of operators, or its learned model).
search::LatencyFn table_latency(const SearchToolOptions& o, const SearchedSpace& s) {
  NAS_CHECK(!s.generic, UsageError, "--latency-table: a generic space's latency is what --evaluator reports");
  NAS_CHECK(families::of(s.space).latency_ops(), UsageError,
            "--latency-table: space \"" << s.space.name << "\" (family " << s.space.family
                                        << ") has no latency tables; --max-latency-ms alone measures each candidate");
  auto table = std::make_shared<supernet::LatencyTable>(supernet::load_latency_table(o.latency_table));
  supernet::check_table_for(*table, s.space, s.in_channels, s.num_classes, o.latency_table);
  NAS_CHECK(!o.latency_model || !table->model.empty(), UsageError,
            "--latency-model: " << o.latency_table << " has no learned model (nas-benchmark --build-lut --model-archs N)");
  auto diff = spec::context_differences(table->context,
                                        eval::machine_context(o.common.threads, o.common.device, o.common.precision));
  if (!diff.empty()) {
    std::string d;
    for (const auto& x : diff) d += (d.empty() ? "" : "; ") + x;
    log_warn(o.latency_table + ": built in another context (" + d + "): its latencies may not hold here");
  }
  return [table, file = o.latency_table, model = o.latency_model, sp = s.space](const spec::Arch& a) {
    return model ? table->model_ms(sp, a, file) : table->predict_ms(sp, a, file);
  };
}

// The objectives of the search: --objectives, or for nsga2 and ehvi on a space with analytic costs,
// accuracy and MFLOPs; checked against the estimator and the processes.
std::vector<std::string> search_objectives(const SearchToolOptions& o, const EstimatorChoice& how, bool generic,
                                           bool distributed) {
  for (double v : o.hv_reference)
    NAS_CHECK(std::isfinite(v), UsageError, "--hv-reference: expected finite numbers, found " << v);
  std::vector<std::string> objectives = o.objectives;
  if (!objectives.empty()) {
    search::check_objectives(objectives);
  } else {
    const bool multi = o.strategy == "nsga2" || o.strategy == "ehvi";
    NAS_CHECK(o.hv_reference.empty() || multi, UsageError, "--hv-reference: give --objectives too");
    NAS_CHECK(!multi || !generic, UsageError,
              "--strategy " << o.strategy
                            << ": a generic space has no analytic costs; give --objectives (e.g. "
                               "accuracy,latency_ms as --evaluator reports them)");
    if (multi) objectives = {"accuracy", "mflops"};
  }
  auto count = [&](const char* name) { return std::count(objectives.begin(), objectives.end(), name); };
  NAS_CHECK(how.kind != "zero-cost" || objectives.empty() || !o.hv_reference.empty() || count("accuracy") == 0,
            UsageError, "--objectives with --estimator zero-cost: a proxy's values have no natural floor; give --hv-reference");
  NAS_CHECK(!distributed || (o.max_latency_ms <= 0 && count("latency_ms") == 0) || !o.latency_table.empty() || generic,
            UsageError,
            (count("latency_ms") ? "--objectives latency_ms" : "--max-latency-ms")
                << ": measured on each rank, latencies would differ between ranks and so would their "
                   "searches; give a --latency-table (or run one process)");
  const bool cost_objective = objectives.size() > static_cast<size_t>(count("accuracy"));
  NAS_CHECK(!generic || how.external || !cost_objective, UsageError,
            "--objectives: a generic space's costs are what --evaluator reports; --predictor-from reports none");
  return objectives;
}

// Evolution's tournament sample against its population (given, default, or a resumed search's).
void check_sample_size(const SearchToolOptions& o, int population) {
  NAS_CHECK(o.strategy != "evolution" || o.sample_size <= population, UsageError,
            "--sample-size " << o.sample_size << ": expected at most --population (" << population << ")");
}

// The engine's options from the flags: budget, bounds, latency, objectives and the strategy's settings.
search::SearchOptions engine_options(const SearchToolOptions& o, const EstimatorChoice& how, const SearchedSpace& s,
                                     dist::Group* group) {
  search::SearchOptions so;
  so.strategy = o.strategy;
  so.budget = o.budget;
  so.time_budget = o.time_budget;
  so.constraints.max_mflops = o.max_mflops;
  so.constraints.max_params = o.max_params;
  so.constraints.max_memory_mib = o.max_memory_mib;
  so.constraints.max_latency_ms = o.max_latency_ms;
  so.objectives = search_objectives(o, how, s.generic != nullptr, group != nullptr);
  so.latency_ms = o.latency_table.empty() ? measured_latency(o, s) : table_latency(o, s);
  so.latency_always = !o.latency_table.empty();
  so.hv_reference = o.hv_reference;
  so.seed = s.seed;
  so.prescreen = o.prescreen;
  so.group = group;
  auto& st = so.strategy_options;
  if (o.population > 0) st.population = st.nsga2_population = o.population;
  st.sample_size = o.sample_size;
  st.mutation_prob = o.mutation_prob;
  st.crossover = o.crossover;
  st.bo_init = o.bo_init;
  st.tpe_startup = o.tpe_startup;
  st.tpe_gamma = o.tpe_gamma;
  st.tpe_candidates = o.tpe_candidates;
  st.tpe_multivariate = !o.tpe_independent;
  st.hb_min_epochs = o.hb_min_epochs;
  st.hb_max_epochs = o.hb_max_epochs;
  st.hb_eta = o.hb_eta;
  st.darts_steps = o.darts_steps;
  st.darts_batch = o.darts_batch;
  st.darts_second_order = o.darts_order == 2;
  st.darts_alpha_lr = o.darts_alpha_lr;
  st.darts_w_lr = o.darts_w_lr;
  NAS_CHECK(o.strategy != "hyperband" || how.kind == "low-fidelity", UsageError,
            "--strategy hyperband: trains children for a varying number of epochs; give --estimator low-fidelity");
  NAS_CHECK(o.strategy != "hyperband" || !group, UsageError, "--strategy hyperband: runs in one process");
  if (!o.resume) check_sample_size(o, st.population);  // a resumed search's population may be the stopped one's
  return so;
}

// The estimator, what it reads (shared with it), and how nas.search describes it.
struct Scoring {
  std::unique_ptr<search::Estimator> estimator;
  std::shared_ptr<const CheckpointData> data;  // the supernet's or --train's images, when loaded
  int64_t val_images = 0, calib_images = 0;
  spec::json options;           // nas.search's estimator_settings.options
  spec::json predictor_report;  // --predictor-from: what the predictor learnt
};

std::shared_ptr<const data::ImageSet> images_of(const std::shared_ptr<const CheckpointData>& d) {
  return {d, &d->train};
}

// The zero-cost proxy estimator: the child at its initial weights (seeded as lower-fidelity
// training seeds them) or sliced from the supernet, on a fixed batch of training images drawn
// with the search's seed.
std::unique_ptr<search::ZeroCostEstimator> make_zero_cost(const SearchToolOptions& o, const EstimatorChoice& how,
                                                          const SearchedSpace& s, const CheckpointData& d) {
  std::vector<int64_t> idx = data::seeded_subset(d.split.train, o.proxy_batch, mix_seed(s.seed, 0x2e70));
  NAS_CHECK(idx.size() >= 2, SpecError, "zero-cost proxies: expected at least 2 training images, found " << idx.size());
  data::LoaderOptions lo;
  lo.norm = d.norm;
  lo.prefetch = 0;
  search::ZeroCostOptions zo;
  if (!o.proxy.empty()) zo.proxy = o.proxy;
  zo.weights = how.proxy_weights;
  zo.seed = s.train_spec.seed;
  return std::make_unique<search::ZeroCostEstimator>(s.space, s.in_channels, s.num_classes, s.loaded.net,
                                                     data::make_batch(d.train, idx, lo, 0), zo);
}

void use_predictor(const SearchToolOptions& o, const SearchedSpace& s, Scoring& sc) {
  std::vector<spec::SearchResult> data;
  for (const auto& f : o.predictor_from) data.push_back(families::load_search_result(f));
  auto p = std::make_unique<search::PredictorEstimator>(s.encoding(), data, "--predictor-from", s.seed, o.predictor_from);
  const auto& rep = p->report();
  sc.predictor_report = {{"mode", "estimator"},         {"from", o.predictor_from},
                         {"points", rep.points},        {"val_points", rep.val_points},
                         {"val_rmse", rep.val_rmse},    {"val_kendall_tau", rep.val_kendall_tau}};
  log_info("predictor: learnt from " + std::to_string(rep.points) + " candidates; held-out RMSE " +
           std::to_string(rep.val_rmse) + ", Kendall tau " + std::to_string(rep.val_kendall_tau));
  sc.estimator = std::move(p);
}

void use_training(const SearchToolOptions& o, const EstimatorChoice& how, SearchedSpace& s, int eval_batch,
                  Scoring& sc) {
  if (!o.data.empty()) s.train_spec.data.path = o.data;
  auto td = std::make_shared<const train::TrainData>(train::load_train_data(s.train_spec));
  NAS_CHECK(s.in_channels == td->train_set.c && s.num_classes == td->train_set.num_classes, SpecError,
            s.train_spec.data.path << ": expected images with " << s.in_channels << " channel(s) and " << s.num_classes
                                   << " classes (--input-channels, --classes), found " << td->train_set.c << " and "
                                   << td->train_set.num_classes);
  auto val = data::seeded_subset(td->split.val, o.val_images, mix_seed(s.seed, 0x7a1));
  NAS_CHECK(!val.empty(), SpecError, s.train_spec.source << ": data.validation_images: expected some, found 0");
  sc.val_images = static_cast<int64_t>(val.size());
  train::CurveOptions co;
  co.device = o.common.device;
  co.eval_batch = eval_batch;
  co.train_images = o.lf_images;
  NAS_CHECK(families::of(s.space).runs_at_any_resolution() || o.lf_resolution == 0 ||
                o.lf_resolution == s.space.resolution.front(),
            UsageError,
            "--lf-resolution " << o.lf_resolution << ": a child of family " << s.space.family
                               << " runs at its space's resolution (" << s.space.resolution.front()
                               << ") only; drop the flag");
  co.resolution = o.lf_resolution;
  co.epochs = how.kind == "learning-curve" ? o.curve_epochs : o.lf_epochs;
  if (how.kind == "low-fidelity")
    sc.estimator = std::make_unique<search::LowFidelityEstimator>(s.space, s.train_spec, td, val, co);
  else
    sc.estimator = std::make_unique<search::CurveEstimator>(s.space, s.train_spec, td, val, co, o.curve_observe,
                                                            o.curve_margin);
}

void use_inherited(const SearchToolOptions& o, SearchedSpace& s, int eval_batch, Scoring& sc) {
  const auto& meta = s.loaded.meta;
  torch::Device device(o.common.device);
  s.loaded.net->to(device);
  sc.data = std::make_shared<const CheckpointData>(load_checkpoint_data(
      meta.train, o.data, o.calib_images, meta.in_channels, meta.num_classes, meta.image_size));
  auto val = data::seeded_subset(sc.data->split.val, o.val_images, mix_seed(s.seed, 0x7a1));
  NAS_CHECK(!val.empty(), SpecError,
            o.supernet << ": the supernet's train spec holds out no validation images (data.validation_images: 0)");
  sc.val_images = static_cast<int64_t>(val.size());
  sc.calib_images = static_cast<int64_t>(sc.data->calib.size());
  sc.estimator = std::make_unique<search::InheritedEstimator>(s.loaded.net, images_of(sc.data), sc.data->calib, val,
                                                              sc.data->norm, meta.train.calib_batch_size, eval_batch,
                                                              device);
}

// The training images that zero-cost proxies read (--train's or the supernet's), loaded once.
// nas.search records its calibration subset as calib_images, as it did before the estimators shared their data.
const CheckpointData& proxy_images(const SearchToolOptions& o, const SearchedSpace& s, Scoring& sc) {
  if (!sc.data) {
    sc.data = std::make_shared<const CheckpointData>(
        load_checkpoint_data(s.train_spec, o.data, 0, s.in_channels, s.num_classes));
    sc.calib_images = static_cast<int64_t>(sc.data->calib.size());
  }
  return *sc.data;
}

spec::json estimator_options_json(const SearchToolOptions& o, const EstimatorChoice& how) {
  spec::json j = {{"estimator", how.kind}};
  if (how.trains)
    j.update({{"train_images", o.lf_images},
              {"resolution", o.lf_resolution},
              {"epochs", how.kind == "learning-curve" ? o.curve_epochs : o.lf_epochs}});
  if (how.kind == "learning-curve") j.update({{"observe", o.curve_observe}, {"margin", o.curve_margin}});
  if (how.proxies)
    j.update({{"proxy", o.proxy.empty() ? search::ZeroCostOptions{}.proxy : o.proxy},
              {"proxy_weights", how.proxy_weights},
              {"proxy_batch", o.proxy_batch}});
  if (how.external) j["timeout_s"] = o.eval_timeout;
  if (!o.latency_table.empty()) j.update({{"latency_table", o.latency_table}, {"latency_model", o.latency_model}});
  return j;
}

Scoring make_scoring(const SearchToolOptions& o, const EstimatorChoice& how, SearchedSpace& s) {
  const int eval_batch = o.eval_batch > 0 ? o.eval_batch : eval::default_eval_batch(torch::Device(o.common.device));
  Scoring sc;
  if (how.predicted)
    use_predictor(o, s, sc);
  else if (how.trains)
    use_training(o, how, s, eval_batch, sc);
  else if (how.kind == "zero-cost")
    sc.estimator = make_zero_cost(o, how, s, proxy_images(o, s, sc));
  else if (!how.external)
    use_inherited(o, s, eval_batch, sc);
  else
    sc.estimator = std::make_unique<search::ExternalEstimator>(o.evaluator, o.eval_timeout);
  sc.options = estimator_options_json(o, how);
  return sc;
}

// --prescreen --proxy: the engine screens children by a zero-cost proxy (it keeps the proxy alive).
void screen_by_proxy(const SearchToolOptions& o, const EstimatorChoice& how, const SearchedSpace& s, Scoring& sc,
                     search::SearchOptions& so) {
  NAS_CHECK(!s.generic, UsageError, "--prescreen --proxy: a generic space has no network to score a proxy on");
  std::shared_ptr<search::ZeroCostEstimator> proxy = make_zero_cost(o, how, s, proxy_images(o, s, sc));
  so.prescreen_proxy_name = proxy->name();
  auto encoding = std::make_shared<const search::ArchEncoding>(s.space);
  so.prescreen_proxy = [proxy, encoding](const search::Genotype& g) {
    try {
      return proxy->proxy(encoding->decode(g));
    } catch (const Interrupted&) {
      throw;
    } catch (const Error&) {
      return -1e300;  // undefined for this child: below every median, screened after the warm-up
    }
  };
}

// The part of a search's identity that the engine does not know: how the candidates are scored.
void set_scoring(spec::SearchIdentity& id, const SearchToolOptions& o, const Scoring& sc) {
  id.supernet = o.supernet;
  id.evaluator = o.evaluator;
  id.estimator_options = sc.options;
  id.val_images = sc.val_images;
  id.calib_images = sc.calib_images;
}

// The search as nas.search will record it.
spec::SearchIdentity identity_of(const SearchToolOptions& o, const SearchedSpace& s, const search::SearchOptions& so,
                                 const Scoring& sc) {
  spec::SearchIdentity id = search::identity_of(s.encoding(), so);
  set_scoring(id, o, sc);
  return id;
}

// --resume: the stopped search's evaluations, to replay, after checking that it is the same search.
// Returns the stopped search's DARTS relaxation (null for other strategies).
spec::json resume_stopped_search(const SearchToolOptions& o, const SearchedSpace& s, const Scoring& sc,
                                 search::SearchOptions& so) {
  NAS_CHECK(o.out != "-", UsageError, "--resume needs --out: the file the stopped search wrote");
  auto prev = families::load_search_result(o.out);
  NAS_CHECK(prev.interrupted, UsageError, o.out << ": this search finished; nothing to resume");
  if (o.hv_reference.empty()) so.hv_reference = prev.hv_reference;  // the stopped run's default
  search::adopt_stopped_defaults(o.strategy, o.budget, prev.strategy_options, so.strategy_options);
  // The stopped search's population, unless given (a value that is not an integer is left to the
  // identity check below to report).
  const spec::json* stopped_population =
      prev.strategy_options.contains("population") ? &prev.strategy_options.at("population") : nullptr;
  if (o.population == 0 && stopped_population && stopped_population->is_number_integer()) {
    const int population = stopped_population->get<int>();
    so.strategy_options.population = so.strategy_options.nsga2_population = population;
  }
  const auto differences = spec::identity_differences(prev, identity_of(o, s, so, sc));
  NAS_CHECK(differences.empty(), UsageError,
            o.out << ": cannot resume: " << differences.front() << " differs from the stopped search's");
  const auto& ds = s.encoding().decisions();
  NAS_CHECK(!prev.space_hash.empty() || !s.generic ||
                std::all_of(ds.begin(), ds.end(), [](const search::Decision& x) { return x.ordered; }),
            UsageError,
            o.out << ": cannot resume: written before decisions could be unordered, its search took every decision "
                     "as ordered; write `ordered: true` on the string and boolean decisions of "
                  << o.space << " to resume it");
  so.resumed_seconds = prev.total_seconds;
  for (const auto& c : prev.candidates)
    if (c.evaluated) so.replay[search::replay_key(c)] = c;
  log_info("resuming " + o.out + ": " + std::to_string(so.replay.size()) + " evaluations to replay");
  return prev.relaxation;
}

// --strategy darts: the relaxation (rank 0 runs it, the others take its derived children), unless
// `relaxation` already holds a stopped search's.
spec::json darts_phase(const SearchToolOptions& o, const SearchedSpace& s, search::SearchOptions& so,
                       spec::json relaxation) {
  NAS_CHECK(!s.generic, UsageError, "--strategy darts: needs --supernet, a supernet of a cell space (family cell)");
  if (so.group && !(relaxation.is_object() && relaxation.contains("children"))) {
    const bool main_rank = dist::is_main();
    spec::json mine = main_rank ? run_darts_phase(o, s.space, *s.arch_encoding, s.seed, so, relaxation) : spec::json();
    relaxation =
        spec::json::parse(so.group->allgather(main_rank ? spec::compact_dump(mine) : "", "sharing DARTS's children")[0]);
  }
  return run_darts_phase(o, s.space, *s.arch_encoding, s.seed, so, relaxation);
}

// What the engine does not know about: how the candidates were scored.
void annotate(spec::SearchResult& r, const SearchToolOptions& o, const Scoring& sc, const spec::json& relaxation) {
  set_scoring(r, o, sc);
  if (!sc.predictor_report.is_null()) r.predictor = sc.predictor_report;
  r.relaxation = relaxation;
}

// --metrics: one JSON line per evaluated candidate (rank 0; the file appears with the first).
std::function<void(const spec::Candidate&)> metrics_writer(const std::string& path) {
  auto writer = std::make_shared<std::unique_ptr<JsonlWriter>>();
  return [writer, path](const spec::Candidate& c) {
    if (!dist::is_main()) return;
    if (!*writer) *writer = std::make_unique<JsonlWriter>(path, true);
    spec::json line = {{"index", c.index},       {"hash", c.hash},         {"origin", c.origin},
                       {"mflops", c.mflops},     {"params", c.params},     {"val_acc", c.val_acc},
                       {"val_loss", c.val_loss}, {"eval_seconds", c.eval_seconds}};
    if (c.hypervolume >= 0) line["hypervolume"] = c.hypervolume;
    (*writer)->write_line(spec::compact_dump(line));
  };
}

// A distributed search: every rank must run the same search from the same replayed evaluations.
void check_same_search(dist::Group& group, const spec::SearchIdentity& id, const search::SearchOptions& so,
                       const std::string& kind, bool prescreen) {
  spec::json fingerprint = spec::to_json(id);
  fingerprint.erase("supernet");  // the same checkpoint may lie at another path on another machine
  fingerprint["replay"] = so.replay.size();
  group.check_same(spec::compact_dump(fingerprint), "search settings");
  log_info("distributed search: " + std::to_string(group.size()) +
           " processes score the children that the strategy proposes together" +
           (prescreen || kind == "learning-curve" ? " (one at a time here: --prescreen or the learning-curve "
                                                    "estimator needs each score before the next child)"
                                                  : ""));
}

void log_outcome(const spec::SearchResult& r) {
  if (r.best < 0) {
    log_warn("no feasible candidate was evaluated");
    return;
  }
  const auto& b = r.candidates[r.best];
  char line[256];
  std::snprintf(line, sizeof line, "best %s: val acc %.4f, %.3f MFLOPs, %lld params (%lld candidates, %.1f s)",
                b.hash.c_str(), b.val_acc, b.mflops, static_cast<long long>(b.params),
                static_cast<long long>(r.candidates.size()), r.total_seconds);
  log_info(line);
}

// Rank 0 writes the side outputs first and the main output last; the other ranks wait for it.
void write_search_outputs(const SearchToolOptions& o, const spec::SearchResult& r, dist::Group* group) {
  if (dist::is_main()) {
    if (!o.csv.empty()) write_output(o.csv, to_csv(r));
    if (!o.plot.empty()) search::write_front_plot(r, o.plot);
    if (!o.best_arch.empty()) {
      const auto& b = r.candidates[r.best];
      write_output(o.best_arch, spec::canonical_dump(b.generic_arch.is_null() ? spec::to_json(b.arch) : b.generic_arch));
    }
    write_output(o.out, spec::canonical_dump(spec::to_json(r)));
  }
  if (group) group->barrier("the end of the search");
  NAS_CHECK(!r.interrupted, Interrupted,
            "search interrupted after " << est_calls(r) << " evaluations"
                                        << (dist::is_main() ? "; partial results written to " + o.out : ""));
}
}  // namespace

void run_search_tool(const SearchToolOptions& o) {
  cli::apply_common_options(o.common);
  // A distributed search: every rank runs the same search and scores its share of the children;
  // rank 0 writes every file.
  dist::Group* group = dist::world_size() > 1 ? dist::world() : nullptr;
  if (dist::is_main())
    for (const auto& p : {o.out, o.csv, o.best_arch, o.metrics, o.plot})
      if (!p.empty() && p != "-") check_output_path(p);
  const EstimatorChoice how = choose_estimator(o);
  SearchedSpace s = load_searched_space(o, how);
  const search::CostFn cost = [space = s.space, in = s.in_channels, classes = s.num_classes](const spec::Arch& a) {
    return families::arch_cost(space, a, in, classes);
  };
  search::SearchOptions so = engine_options(o, how, s, group);
  if (!s.generic) search::check_satisfiable(s.space, cost, so.constraints, so.latency_ms);
  Scoring sc = make_scoring(o, how, s);
  if (o.prescreen && !o.proxy.empty()) screen_by_proxy(o, how, s, sc, so);
  spec::json relaxation = o.resume ? resume_stopped_search(o, s, sc, so) : spec::json();
  if (o.resume) check_sample_size(o, so.strategy_options.population);
  if (o.strategy == "darts") relaxation = darts_phase(o, s, so, relaxation);
  so.on_checkpoint = [&](const spec::SearchResult& partial) {
    if (o.out == "-" || !dist::is_main()) return;
    spec::SearchResult p = partial;
    annotate(p, o, sc, relaxation);
    write_output(o.out, spec::canonical_dump(spec::to_json(p)));
  };
  if (!o.metrics.empty()) so.on_evaluated = metrics_writer(o.metrics);
  if (group) check_same_search(*group, identity_of(o, s, so, sc), so, how.kind, o.prescreen);
  log_info("search: " + o.strategy + ", budget " + std::to_string(o.budget) + ", " +
           (o.evaluator.empty() ? std::to_string(sc.val_images) + " validation images, " +
                                      std::to_string(sc.calib_images) + " calibration images"
                                : "external evaluator: " + o.evaluator));
  spec::SearchResult r = o.strategy == "hyperband" ? search::run_hyperband(*s.arch_encoding, cost, *sc.estimator, so)
                                                   : search::run_search(s.encoding(), cost, *sc.estimator, so);
  annotate(r, o, sc, relaxation);
  log_outcome(r);
  NAS_CHECK(o.best_arch.empty() || r.best >= 0, Error, "--best-arch: no feasible candidate was evaluated");
  write_search_outputs(o, r, group);
}

}  // namespace nas::app
