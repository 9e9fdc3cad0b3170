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
#include "search/darts.h"
#include "search/estimators.h"
#include "search/external.h"
#include "search/plot.h"
#include "search/predictor.h"
#include "eval/benchmark.h"
#include "eval/evaluate.h"
#include "eval/lut.h"
#include "supernet/latency_table.h"
#include "nn/child.h"
#include "search/hyperband.h"
#include "search/search.h"
#include "search/zero_cost.h"
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
  app.add_option("--supernet", o.supernet, "Supernet checkpoint (its space is searched)");
  app.add_option("--space", o.space,
                 "Search space to search without a supernet: an mbconv space (with --evaluator, --predictor-from or "
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
  app.add_option("--out", o.out, "nas.search JSON output ('-' for stdout)")->capture_default_str();
  app.add_option("--csv", o.csv, "Also write every candidate as CSV (pareto column marks the front)");
  app.add_option("--best-arch", o.best_arch, "Also write the best child as a nas.arch file");
  app.add_option("--plot", o.plot, "Also draw the accuracy-vs-MFLOPs and -params fronts as a PNG (needs gnuplot); with --objectives also "
                 "the hypervolume against evaluations");
  app.add_option("--metrics", o.metrics, "Append one JSON line per evaluated candidate to this file");
  app.add_option("--data", o.data, "Dataset directory (default: the one the supernet was trained on)");
  app.add_option("--strategy", o.strategy,
                 "coarse-to-fine (BigNAS), random, grid, evolution (regularized), hill-climbing, reinforce, mcts, "
                 "tpe (tree-structured Parzen estimator), nsga2 (multi-objective: --objectives), bayesian "
                 "(Gaussian process + expected improvement); hyperband (successive halving of --estimator "
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
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--population", o.population, "evolution, nsga2: population size")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  app.add_option("--sample-size", o.sample_size, "evolution: tournament sample size")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--mutation-prob", o.mutation_prob, "Probability that a mutation moves each decision")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_flag("--crossover", o.crossover, "evolution: cross the two best of the sample before mutating");
  app.add_option("--bo-init", o.bo_init,
                 "bayesian: random children before the Gaussian process (0: max(5, min(10, budget / 10)))")
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
  app.add_option("--objectives", o.objectives,
                 "Multi-objective search: two or three of accuracy (maximized), mflops, params, latency_ms, "
                 "memory_mib (minimized), comma-separated; nas.search records their front and its hypervolume "
                 "(--strategy nsga2 selects by them; default for nsga2: accuracy,mflops)")
      ->delimiter(',');
  app.add_option("--hv-reference", o.hv_reference,
                 "The hypervolume's reference point, one value per objective in its own units (accuracy as a "
                 "fraction), comma-separated (default: accuracy 0 and each cost's bound, else the largest child's)")
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
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--calib-images", o.calib_images, "BN calibration images (default: the train spec's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--eval-batch", o.eval_batch, "Batch size for evaluation (0: 64 on CPU, 512 on CUDA)")
      ->check(CLI::Range(0, 65536));
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
spec::json run_darts_phase(const SearchOptions& o, const spec::SearchSpace& space, const search::MbconvEncoding& enc,
                           uint64_t seed, search::SearchOptions& so, const spec::json& previous) {
  NAS_CHECK(!o.supernet.empty() && space.is_cell(), UsageError,
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
  log_info("darts: derived normal " + spec::cell_notation(derived.normal) + " reduce " + spec::cell_notation(derived.reduce) +
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
  spec::json report = {{"ops", space.ops},
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
// The zero-cost proxy estimator: the child at its initial weights (seeded as lower-fidelity
// training seeds them, by `init_seed`) or sliced from `net`, on a fixed batch of training images
// drawn with `seed`.
std::unique_ptr<search::ZeroCostEstimator> make_zero_cost(const SearchOptions& o, const spec::SearchSpace& space,
                                                          int in_channels, int num_classes, const std::string& weights,
                                                          supernet::Supernet net, const CheckpointData& d,
                                                          uint64_t init_seed, uint64_t seed) {
  std::vector<int64_t> idx = data::seeded_subset(d.split.train, o.proxy_batch, mix_seed(seed, 0x2e70));
  NAS_CHECK(idx.size() >= 2, SpecError, "zero-cost proxies: expected at least 2 training images, found " << idx.size());
  data::LoaderOptions lo;
  lo.norm = d.norm;
  lo.prefetch = 0;
  search::ZeroCostOptions zo;
  if (!o.proxy.empty()) zo.proxy = o.proxy;
  zo.weights = weights;
  zo.seed = init_seed;
  return std::make_unique<search::ZeroCostEstimator>(space, in_channels, num_classes, net,
                                                     data::make_batch(d.train, idx, lo, 0), zo);
}

// The objectives of the search: --objectives, or for nsga2 on a space with analytic costs,
// accuracy and MFLOPs.
std::vector<std::string> search_objectives(const SearchOptions& o, bool generic) {
  for (double v : o.hv_reference)
    NAS_CHECK(std::isfinite(v), UsageError, "--hv-reference: expected finite numbers, found " << v);
  if (!o.objectives.empty()) {
    search::check_objectives(o.objectives);
    return o.objectives;
  }
  NAS_CHECK(o.hv_reference.empty() || o.strategy == "nsga2", UsageError, "--hv-reference: give --objectives too");
  if (o.strategy != "nsga2") return {};
  NAS_CHECK(!generic, UsageError,
            "--strategy nsga2: a generic space has no analytic costs; give --objectives (e.g. accuracy,latency_ms as "
            "--evaluator reports them)");
  return {"accuracy", "mflops"};
}
}  // namespace

void run_search(const SearchOptions& o) {
  cli::apply_common_options(o.common);
  // A distributed search: every rank runs the same search and scores its share of the children;
  // rank 0 writes every file.
  dist::Group* group = dist::world_size() > 1 ? dist::world() : nullptr;
  const bool main_rank = dist::is_main();
  if (main_rank)
    for (const auto& p : {o.out, o.csv, o.best_arch, o.metrics, o.plot})
      if (!p.empty() && p != "-") check_output_path(p);
  // The estimator: --evaluator and --predictor-from name theirs; the others need --estimator.
  const bool external = !o.evaluator.empty(), predicted = !o.predictor_from.empty();
  NAS_CHECK(!(external && predicted), UsageError, "give one of --evaluator and --predictor-from");
  std::string kind = external ? "external" : predicted ? "predictor" : o.estimator;
  NAS_CHECK(o.estimator == "inherited" || o.estimator == kind, UsageError,
            "--estimator " << o.estimator << ": " << (external ? "--evaluator" : "--predictor-from")
                           << " scores the candidates; drop one of them");
  NAS_CHECK(kind != "external" || external, UsageError, "--estimator external needs --evaluator CMD");
  NAS_CHECK(kind != "predictor" || predicted, UsageError, "--estimator predictor needs --predictor-from FILE");
  const bool trains = kind == "low-fidelity" || kind == "learning-curve";
  const bool proxies = kind == "zero-cost" || (o.prescreen && !o.proxy.empty());
  const std::string proxy_weights = !proxies ? "" : !o.proxy_weights.empty() ? o.proxy_weights
                                                 : o.supernet.empty()        ? "init"
                                                                             : "inherited";
  NAS_CHECK(o.proxy.empty() || proxies, UsageError, "--proxy: give --estimator zero-cost or --prescreen too");
  if (!o.proxy.empty()) search::check_proxy(o.proxy);
  NAS_CHECK(o.proxy_weights.empty() || proxies, UsageError,
            "--proxy-weights: give --estimator zero-cost, or --prescreen with --proxy");
  NAS_CHECK(o.strategy != "hyperband" || !o.prescreen, UsageError,
            "--prescreen: hyperband screens by training briefly; drop one of them");
  NAS_CHECK(!proxies || !o.supernet.empty() || !o.train.empty(), UsageError,
            "zero-cost proxies read a batch of training images: give --train (a nas.train spec) or --supernet");
  NAS_CHECK(proxy_weights != "inherited" || !o.supernet.empty(), UsageError, "--proxy-weights inherited: needs --supernet");
  NAS_CHECK(!o.supernet.empty() || (!o.space.empty() && kind != "inherited"), UsageError,
            "give --supernet, or --space with another estimator than inherited weights");
  NAS_CHECK(o.supernet.empty() || o.space.empty(), UsageError,
            "--space: the supernet's own space is searched; give one of --supernet and --space");
  NAS_CHECK(!trains || !o.supernet.empty() || !o.train.empty(), UsageError,
            "--estimator " << kind << " trains children: give --train (a nas.train spec) or --supernet (its spec)");
  // The space and what the cost model needs: from the supernet, or from --space and the flags.
  spec::SearchSpace space;
  std::unique_ptr<search::GenericEncoding> generic;  // a generic space (--space): named decisions
  int in_channels = o.input_channels, num_classes = o.classes;
  uint64_t seed = o.common.seed_given ? o.common.seed : 0;
  supernet::LoadedSupernet loaded;
  spec::TrainSpec train_spec;
  if (!o.train.empty()) train_spec = spec::load_train_spec(o.train);
  if (!o.supernet.empty()) {
    auto meta = kind == "inherited" || proxy_weights == "inherited" ? (loaded = supernet::load_supernet(o.supernet)).meta
                                                                     : supernet::read_checkpoint_meta(o.supernet);
    if (o.train.empty()) train_spec = meta.train;
    if (!meta.finished)
      log_warn(o.supernet + ": training has not finished (step " + std::to_string(meta.step) + " of " +
               std::to_string(meta.total_steps) + ")");
    space = meta.space;
    in_channels = meta.in_channels;
    num_classes = meta.num_classes;
    if (!o.common.seed_given) seed = meta.train.seed;
  } else {
    spec::json doc = spec::load_document(o.space);
    if (search::space_family(doc) == "generic") {
      // Named decisions scored by the user's program: no network, so no analytic cost.
      NAS_CHECK(external || predicted, UsageError,
                o.space << ": a generic space is scored by --evaluator CMD or --predictor-from FILE, not by --estimator "
                        << kind);
      NAS_CHECK(o.max_latency_ms <= 0 || external, UsageError,
                "--max-latency-ms: a generic space's latency is what --evaluator reports as \"latency_ms\"");
      NAS_CHECK(external || (o.max_mflops <= 0 && o.max_params <= 0 && o.max_memory_mib <= 0), UsageError,
                "--max-mflops, --max-params, --max-memory-mib: a generic space's costs are what --evaluator reports; "
                "--predictor-from reports none");
      generic = search::generic_space_from_json(doc, o.space);
    } else {
      space = spec::search_space_from_json(doc, o.space == "-" ? "<stdin>" : o.space);
    }
    if (!o.train.empty() && !o.common.seed_given) seed = train_spec.seed;
  }
  // --seed seeds what trains or initializes children too (lower fidelity, zero-cost at init weights).
  if (o.common.seed_given) train_spec.seed = o.common.seed;
  search::CostFn cost = [&](const spec::Arch& a) { return supernet::arch_cost(space, a, in_channels, num_classes); };
  spec::Constraints constraints;
  constraints.max_mflops = o.max_mflops;
  constraints.max_params = o.max_params;
  constraints.max_memory_mib = o.max_memory_mib;
  constraints.max_latency_ms = o.max_latency_ms;
  // Measured latency: the child as a standalone network (latency does not depend on the weights),
  // batch 1, median of 10 runs (at least 0.05 s) after 3 warm-ups, timed like a latency table's.
  eval::LutOptions lat;
  lat.timing.warmup = 3;
  lat.timing.min_reps = 10;
  lat.timing.ci = 0;
  lat.timing.min_seconds = 0.05;
  lat.timing.max_seconds = 1e30;
  lat.timing.max_reps = 1000;
  lat.device = torch::Device(o.common.device);
  std::function<double(const spec::Arch&)> latency = [&](const spec::Arch& a) {
    return eval::measure_child(space, a, in_channels, num_classes, lat).median_ms;
  };
  const std::vector<std::string> objectives = search_objectives(o, generic != nullptr);
  NAS_CHECK(kind != "zero-cost" || objectives.empty() || !o.hv_reference.empty() ||
                std::count(objectives.begin(), objectives.end(), "accuracy") == 0,
            UsageError,
            "--objectives with --estimator zero-cost: a proxy's values have no natural floor; give --hv-reference");
  const bool latency_objective = std::count(objectives.begin(), objectives.end(), "latency_ms") > 0;
  NAS_CHECK(!group || (o.max_latency_ms <= 0 && !latency_objective) || !o.latency_table.empty() || generic,
            UsageError,
            (latency_objective ? "--objectives latency_ms" : "--max-latency-ms")
                << ": measured on each rank, latencies would differ between ranks and so would their "
                   "searches; give a --latency-table (or run one process)");
  const bool cost_objective = objectives.size() > static_cast<size_t>(std::count(objectives.begin(), objectives.end(), "accuracy"));
  NAS_CHECK(!generic || external || !cost_objective, UsageError,
            "--objectives: a generic space's costs are what --evaluator reports; --predictor-from reports none");
  if (!o.latency_table.empty()) {
    NAS_CHECK(!generic, UsageError, "--latency-table: a generic space's latency is what --evaluator reports");
    NAS_CHECK(space.family == "mbconv", UsageError,
              "--latency-table: space \"" << space.name << "\" (family " << space.family
                                         << ") has no latency tables; --max-latency-ms alone measures each candidate");
    auto table = std::make_shared<supernet::LatencyTable>(supernet::load_latency_table(o.latency_table));
    supernet::check_table_for(*table, space, in_channels, num_classes, o.latency_table);
    NAS_CHECK(!o.latency_model || !table->model.empty(), UsageError,
              "--latency-model: " << o.latency_table << " has no learned model (nas-benchmark --build-lut --model-archs N)");
    auto diff = spec::context_differences(
        table->context, eval::machine_context(o.common.threads, o.common.device, o.common.precision));
    if (!diff.empty()) {
      std::string d;
      for (const auto& x : diff) d += (d.empty() ? "" : "; ") + x;
      log_warn(o.latency_table + ": built in another context (" + d + "): its latencies may not hold here");
    }
    const std::string file = o.latency_table;
    const bool model = o.latency_model;
    const spec::SearchSpace sp = space;
    latency = [table, file, model, sp](const spec::Arch& a) {
      return model ? table->model_ms(sp, a, file) : table->predict_ms(sp, a, file);
    };
  }
  if (!generic) search::check_satisfiable(space, cost, constraints, latency);
  const int eval_batch = o.eval_batch > 0 ? o.eval_batch : eval::default_eval_batch(torch::Device(o.common.device));
  // The estimator: inherited weights on the validation split, or the user's command.
  std::unique_ptr<search::Estimator> est;
  std::vector<int64_t> val;
  CheckpointData d;     // outlive the estimator, which reads their images
  train::TrainData td;
  std::unique_ptr<search::MbconvEncoding> mbconv;
  if (!generic) mbconv = std::make_unique<search::MbconvEncoding>(space);
  const search::Encoding& enc = generic ? static_cast<const search::Encoding&>(*generic) : *mbconv;
  spec::json predictor_report;
  if (predicted) {
    std::vector<spec::SearchResult> data;
    for (const auto& f : o.predictor_from) data.push_back(spec::load_search_result(f));
    auto p = std::make_unique<search::PredictorEstimator>(enc, data, "--predictor-from", seed, o.predictor_from);
    const auto& rep = p->report();
    predictor_report = {{"mode", "estimator"},         {"from", o.predictor_from},
                        {"points", rep.points},        {"val_points", rep.val_points},
                        {"val_rmse", rep.val_rmse},    {"val_kendall_tau", rep.val_kendall_tau}};
    log_info("predictor: learnt from " + std::to_string(rep.points) + " candidates; held-out RMSE " +
             std::to_string(rep.val_rmse) + ", Kendall tau " + std::to_string(rep.val_kendall_tau));
    est = std::move(p);
  } else if (trains) {
    if (!o.data.empty()) train_spec.data.path = o.data;
    td = train::load_train_data(train_spec);
    NAS_CHECK(in_channels == td.train_set.c && num_classes == td.train_set.num_classes, SpecError,
              train_spec.data.path << ": expected images with " << in_channels << " channel(s) and " << num_classes
                                   << " classes (--input-channels, --classes), found " << td.train_set.c << " and "
                                   << td.train_set.num_classes);
    val = data::seeded_subset(td.split.val, o.val_images, mix_seed(seed, 0x7a1));
    NAS_CHECK(!val.empty(), SpecError, train_spec.source << ": data.validation_images: expected some, found 0");
    train::CurveOptions co;
    co.device = o.common.device;
    co.eval_batch = eval_batch;
    co.train_images = o.lf_images;
    NAS_CHECK(space.family == "mbconv" || o.lf_resolution == 0 || o.lf_resolution == space.resolution.front(), UsageError,
              "--lf-resolution " << o.lf_resolution << ": an " << space.family << " space has one resolution ("
                                 << space.resolution.front() << "); drop the flag");
    co.resolution = o.lf_resolution;
    co.epochs = kind == "learning-curve" ? o.curve_epochs : o.lf_epochs;
    if (kind == "low-fidelity")
      est = std::make_unique<search::LowFidelityEstimator>(space, train_spec, td, val, co);
    else
      est = std::make_unique<search::CurveEstimator>(space, train_spec, td, val, co, o.curve_observe, o.curve_margin);
  } else if (kind == "zero-cost") {
    d = load_checkpoint_data(train_spec, o.data, 0, in_channels, num_classes);
    est = make_zero_cost(o, space, in_channels, num_classes, proxy_weights, loaded.net, d, train_spec.seed, seed);
  } else if (!external) {
    auto& meta = loaded.meta;
    torch::Device device(o.common.device);
    loaded.net->to(device);
    d = load_checkpoint_data(meta.train, o.data, o.calib_images, meta.in_channels, meta.num_classes, meta.image_size);
    val = data::seeded_subset(d.split.val, o.val_images, mix_seed(seed, 0x7a1));
    NAS_CHECK(!val.empty(), SpecError,
              o.supernet << ": the supernet's train spec holds out no validation images (data.validation_images: 0)");
    est = std::make_unique<search::InheritedEstimator>(loaded.net, d.train, d.calib, val, d.norm,
                                                       meta.train.calib_batch_size, eval_batch, device);
  } else {
    est = std::make_unique<search::ExternalEstimator>(o.evaluator, o.eval_timeout);
  }
  spec::json estimator_options = {{"estimator", kind}};
  if (trains)
    estimator_options.update({{"train_images", o.lf_images},
                              {"resolution", o.lf_resolution},
                              {"epochs", kind == "learning-curve" ? o.curve_epochs : o.lf_epochs}});
  if (kind == "learning-curve") estimator_options.update({{"observe", o.curve_observe}, {"margin", o.curve_margin}});
  if (proxies)
    estimator_options.update({{"proxy", o.proxy.empty() ? search::ZeroCostOptions{}.proxy : o.proxy},
                              {"proxy_weights", proxy_weights},
                              {"proxy_batch", o.proxy_batch}});
  if (external) estimator_options["timeout_s"] = o.eval_timeout;
  if (!o.latency_table.empty())
    estimator_options.update({{"latency_table", o.latency_table}, {"latency_model", o.latency_model}});
  search::SearchOptions so;
  so.strategy = o.strategy;
  so.budget = o.budget;
  so.time_budget = o.time_budget;
  so.constraints = constraints;
  so.latency_ms = latency;
  so.latency_always = !o.latency_table.empty();
  so.objectives = objectives;
  so.hv_reference = o.hv_reference;
  so.seed = seed;
  so.strategy_options.population = o.population;
  so.strategy_options.sample_size = o.sample_size;
  so.strategy_options.mutation_prob = o.mutation_prob;
  so.strategy_options.crossover = o.crossover;
  so.strategy_options.bo_init = o.bo_init;
  so.strategy_options.tpe_startup = o.tpe_startup;
  so.strategy_options.tpe_gamma = o.tpe_gamma;
  so.strategy_options.tpe_candidates = o.tpe_candidates;
  so.strategy_options.tpe_multivariate = !o.tpe_independent;
  so.strategy_options.hb_min_epochs = o.hb_min_epochs;
  so.strategy_options.hb_max_epochs = o.hb_max_epochs;
  so.strategy_options.hb_eta = o.hb_eta;
  NAS_CHECK(o.strategy != "hyperband" || kind == "low-fidelity", UsageError,
            "--strategy hyperband: trains children for a varying number of epochs; give --estimator low-fidelity");
  NAS_CHECK(o.strategy != "hyperband" || !group, UsageError, "--strategy hyperband: runs in one process");
  so.prescreen = o.prescreen;
  std::unique_ptr<search::ZeroCostEstimator> screen_proxy;
  if (o.prescreen && !o.proxy.empty()) {
    NAS_CHECK(!generic, UsageError, "--prescreen --proxy: a generic space has no network to score a proxy on");
    if (d.train.n == 0) d = load_checkpoint_data(train_spec, o.data, 0, in_channels, num_classes);
    screen_proxy = make_zero_cost(o, space, in_channels, num_classes, proxy_weights, loaded.net, d, train_spec.seed, seed);
    so.prescreen_proxy = [&](const search::Genotype& g) {
      try {
        return screen_proxy->proxy(mbconv->decode(g));
      } catch (const Interrupted&) {
        throw;
      } catch (const Error&) {
        return -1e300;  // undefined for this child: below every median, screened after the warm-up
      }
    };
    so.prescreen_proxy_name = screen_proxy->name();
  }
  so.strategy_options.darts_steps = o.darts_steps;
  so.strategy_options.darts_batch = o.darts_batch;
  so.strategy_options.darts_second_order = o.darts_order == 2;
  so.strategy_options.darts_alpha_lr = o.darts_alpha_lr;
  so.strategy_options.darts_w_lr = o.darts_w_lr;
  spec::json relaxation;  // --strategy darts: what run_darts_phase learnt, or a stopped search's
  NAS_CHECK(o.strategy != "evolution" || o.sample_size <= o.population, UsageError,
            "--sample-size " << o.sample_size << ": expected at most --population (" << o.population << ")");
  if (o.resume) {
    // The stopped run's evaluations, replayed: the search must be the same one.
    NAS_CHECK(o.out != "-", UsageError, "--resume needs --out: the file the stopped search wrote");
    auto prev = spec::load_search_result(o.out);
    NAS_CHECK(prev.interrupted, UsageError, o.out << ": this search finished; nothing to resume");
    auto same = [&](bool ok, const std::string& what) {
      NAS_CHECK(ok, UsageError, o.out << ": cannot resume: " << what << " differs from the stopped search's");
    };
    same(prev.space == enc.space_name() && prev.family == enc.family() &&
             (prev.space_hash.empty() || prev.space_hash == enc.space_hash()),
         "the space (--space, --supernet)");
    const auto& ds = enc.decisions();
    NAS_CHECK(!prev.space_hash.empty() || !generic ||
                  std::all_of(ds.begin(), ds.end(), [](const search::Decision& x) { return x.ordered; }),
              UsageError,
              o.out << ": cannot resume: written before decisions could be unordered, its search took every decision "
                       "as ordered; write `ordered: true` on the string and boolean decisions of "
                    << o.space << " to resume it");
    if (o.hv_reference.empty()) so.hv_reference = prev.multi.hv_reference;  // the stopped run's default
    same(prev.strategy == o.strategy, "--strategy");
    same(prev.seed == seed, "--seed");
    same(prev.budget == o.budget, "--budget");
    same(prev.time_budget == o.time_budget, "--time-budget");
    same(prev.supernet == o.supernet, "--supernet");
    same(prev.evaluator == o.evaluator, "--evaluator");
    same(prev.estimator_options.is_null() || prev.estimator_options == estimator_options,
         "an estimator option (--estimator, --lf-*, --curve-*, --eval-timeout, --latency-table, --latency-model)");
    same(prev.constraints.max_mflops == constraints.max_mflops && prev.constraints.max_params == constraints.max_params &&
             prev.constraints.max_memory_mib == constraints.max_memory_mib &&
             prev.constraints.max_latency_ms == constraints.max_latency_ms,
         "a constraint (--max-mflops, --max-params, --max-memory-mib, --max-latency-ms)");
    same(prev.val_images == static_cast<int64_t>(val.size()) && prev.calib_images == static_cast<int64_t>(d.calib.size()),
         "--val-images or --calib-images");
    if (o.strategy == "bayesian" && !prev.strategy_options.contains("init") && o.bo_init == 0) {
      so.strategy_options.bo_init = search::bayesian_warmup_before_75e0437(o.budget);  // that file's default
      prev.strategy_options["init"] = so.strategy_options.bo_init;
    }
    spec::json opts = search::strategy_options_json(o.strategy, so.strategy_options);
    if (o.prescreen) opts["prescreen"] = true;
    if (so.prescreen_proxy) opts["prescreen_proxy"] = so.prescreen_proxy_name;
    same(prev.multi.names == objectives, "--objectives");
    same(o.hv_reference.empty() || prev.multi.hv_reference == o.hv_reference, "--hv-reference");
    same(prev.strategy_options == opts,
         "a strategy option (--population, --sample-size, --mutation-prob, --crossover, --prescreen, --bo-init, "
         "--tpe-*, --hb-*, --darts-*)");
    relaxation = prev.relaxation;
    so.resumed_seconds = prev.total_seconds;
    for (const auto& c : prev.candidates)
      if (c.evaluated) so.replay[search::replay_key(c)] = c;
    log_info("resuming " + o.out + ": " + std::to_string(so.replay.size()) + " evaluations to replay");
  }
  if (o.strategy == "darts") {
    NAS_CHECK(!generic, UsageError, "--strategy darts: needs --supernet, a supernet of a cell space (family cell)");
    if (group && !(relaxation.is_object() && relaxation.contains("children"))) {
      // Rank 0 runs the relaxation; the others take its derived children (as a resumed search does).
      spec::json mine = main_rank ? run_darts_phase(o, space, *mbconv, seed, so, relaxation) : spec::json();
      relaxation = spec::json::parse(group->allgather(main_rank ? spec::compact_dump(mine) : "", "sharing DARTS's children")[0]);
    }
    relaxation = run_darts_phase(o, space, *mbconv, seed, so, relaxation);
  }
  // What the search engine does not know about: where the space and the scores came from.
  auto annotate = [&](spec::SearchResult& r) {
    r.supernet = o.supernet;
    r.evaluator = o.evaluator;
    r.estimator_options = estimator_options;
    if (!predictor_report.is_null()) r.predictor = predictor_report;
    r.relaxation = relaxation;
    r.val_images = static_cast<int64_t>(val.size());
    r.calib_images = static_cast<int64_t>(d.calib.size());
  };
  so.group = group;
  so.on_checkpoint = [&](const spec::SearchResult& partial) {
    if (o.out == "-" || !main_rank) return;
    spec::SearchResult p = partial;
    annotate(p);
    write_output(o.out, spec::canonical_dump(spec::to_json(p)));
  };
  std::unique_ptr<JsonlWriter> metrics;
  if (!o.metrics.empty()) {
    so.on_evaluated = [&](const spec::Candidate& c) {
      if (!main_rank) return;
      if (!metrics) metrics = std::make_unique<JsonlWriter>(o.metrics, true);  // nothing until a result exists
      spec::json line = {{"index", c.index},       {"hash", c.hash},         {"origin", c.origin},
                         {"mflops", c.mflops},     {"params", c.params},     {"val_acc", c.val_acc},
                         {"val_loss", c.val_loss}, {"eval_seconds", c.eval_seconds}};
      if (c.hypervolume >= 0) line["hypervolume"] = c.hypervolume;
      metrics->write_line(spec::compact_dump(line));
    };
  }
  if (group) {
    spec::json fp = {{"strategy", o.strategy},
                     {"strategy_options", search::strategy_options_json(o.strategy, so.strategy_options)},
                     {"prescreen", o.prescreen},
                     {"budget", o.budget},
                     {"time_budget", o.time_budget},
                     {"seed", seed},
                     {"space", enc.space_name()},
                     {"space_hash", enc.space_hash()},
                     {"estimator", estimator_options},
                     {"evaluator", o.evaluator},
                     {"constraints", {o.max_mflops, o.max_params, o.max_memory_mib, o.max_latency_ms}},
                     {"val_images", val.size()},
                     {"objectives", objectives},
                     {"hv_reference", o.hv_reference},
                     {"replay", so.replay.size()}};
    group->check_same(spec::compact_dump(fp), "search settings");
    log_info("distributed search: " + std::to_string(group->size()) +
             " processes score the children that the strategy proposes together" +
             (o.prescreen || kind == "learning-curve" ? " (one at a time here: --prescreen or the learning-curve "
                                                        "estimator needs each score before the next child)"
                                                      : ""));
  }
  log_info("search: " + o.strategy + ", budget " + std::to_string(o.budget) + ", " +
           (o.evaluator.empty() ? std::to_string(val.size()) + " validation images, " + std::to_string(d.calib.size()) +
                                      " calibration images"
                                : "external evaluator: " + o.evaluator));
  spec::SearchResult r = o.strategy == "hyperband" ? search::run_hyperband(*mbconv, cost, *est, so)
                                                   : search::run_search(enc, cost, *est, so);
  annotate(r);
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
  if (!main_rank) {  // rank 0 writes; the others wait for it, then report as it does
    group->barrier("the end of the search");
    NAS_CHECK(!r.interrupted, Interrupted, "search interrupted after " << est_calls(r) << " evaluations");
    return;
  }
  // Side outputs first, the main output last.
  if (!o.csv.empty()) write_output(o.csv, to_csv(r));
  if (!o.plot.empty()) search::write_front_plot(r, o.plot);
  if (!o.best_arch.empty()) {
    const auto& b = r.candidates[r.best];
    write_output(o.best_arch, spec::canonical_dump(b.generic_arch.is_null() ? spec::to_json(b.arch) : b.generic_arch));
  }
  write_output(o.out, spec::canonical_dump(spec::to_json(r)));
  if (group) group->barrier("the end of the search");
  NAS_CHECK(!r.interrupted, Interrupted,
            "search interrupted after " << est_calls(r) << " evaluations; partial results written to " << o.out);
}

}  // namespace nas::app
