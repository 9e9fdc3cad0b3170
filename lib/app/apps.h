#pragma once
// The four tools as library calls: an options struct, add_*_tool_options(CLI::App&, Options&) and
// run_*_tool(const Options&). tools/<tool>/main.cpp only wires these to run_tool(); tests call run_*()
// directly. Torch-free header.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "search/strategy.h"

namespace nas::app {

extern const cli::ToolInfo kTrainTool, kSearchTool, kSliceTool, kBenchmarkTool;

struct TrainToolOptions {
  TrainToolOptions();  // the library's defaults (train::TrainOptions) where it has them
  cli::CommonOptions common;
  std::string space;     // nas.search_space file
  std::string train;     // nas.train file
  std::string out_dir = "runs/supernet";
  std::string data;      // overrides data.path
  int epochs = 0;        // overrides epochs when > 0
  int batch_size = 0;    // overrides batch_size when > 0
  int64_t train_limit = -1;        // overrides data.train_limit when >= 0
  int64_t validation_images = -1;  // overrides data.validation_images when >= 0
  bool resume = false;
  int64_t stop_after_steps;  // 0: run to the end
  std::string arch;      // from-scratch mode: train this one arch (max, min or a nas.arch file)
  int workers;           // shard workers of every step (0: auto)
  std::string init_from; // fine-tune: start from this supernet checkpoint's weights (with --arch)
};
void add_train_tool_options(CLI::App& app, TrainToolOptions& o);
void run_train_tool(const TrainToolOptions& o);

struct SearchToolOptions {
  SearchToolOptions();  // the library's defaults (search::SearchOptions, the estimators') where it has them
  cli::CommonOptions common;
  std::string supernet;
  std::string space;          // with evaluator: search this space without a supernet
  std::string evaluator;      // external evaluator command (instead of inherited weights)
  double eval_timeout = 600;  // seconds per evaluator call
  int input_channels = 1;     // with space: for the cost model
  int classes = 10;
  std::string out = "-";
  std::string csv;
  std::string best_arch;  // also write the best arch as a nas.arch file
  std::string plot;       // also draw the fronts as a PNG (gnuplot)
  std::string metrics;    // JSON lines, one per evaluated candidate
  std::string data;
  std::string strategy;
  int64_t budget;
  double time_budget = 0;     // seconds; 0: none
  // The strategies' settings: defaults written once, in search::StrategyOptions.
  int population = 0;  // evolution, nsga2; 0: each one's default (StrategyOptions::population, nsga2_population)
  int sample_size = search::StrategyOptions{}.sample_size;      // evolution
  double mutation_prob = search::StrategyOptions{}.mutation_prob;  // evolution, nsga2, coarse-to-fine, bayesian
  bool crossover = search::StrategyOptions{}.crossover;         // evolution
  int64_t bo_init = search::StrategyOptions{}.bo_init;  // bayesian
  int64_t tpe_startup = search::StrategyOptions{}.tpe_startup;  // tpe
  double tpe_gamma = search::StrategyOptions{}.tpe_gamma;
  int tpe_candidates = search::StrategyOptions{}.tpe_candidates;
  bool tpe_independent = !search::StrategyOptions{}.tpe_multivariate;
  int hb_min_epochs = search::StrategyOptions{}.hb_min_epochs;  // hyperband
  int hb_max_epochs = search::StrategyOptions{}.hb_max_epochs;
  int hb_eta = search::StrategyOptions{}.hb_eta;
  std::vector<std::string> objectives;  // multi-objective search (search/objectives.h); empty: accuracy alone
  std::vector<double> hv_reference;     // the hypervolume's reference point; empty: from the bounds or the space
  int64_t darts_steps = search::StrategyOptions{}.darts_steps;  // darts
  int darts_batch = search::StrategyOptions{}.darts_batch;
  int darts_order = search::StrategyOptions{}.darts_second_order ? 2 : 1;
  double darts_alpha_lr = search::StrategyOptions{}.darts_alpha_lr;
  double darts_w_lr = search::StrategyOptions{}.darts_w_lr;
  bool resume = false;        // continue the stopped search recorded in --out
  bool prescreen = false;     // pre-screen candidates with the accuracy predictor
  std::string estimator = "inherited";  // inherited, low-fidelity, learning-curve, zero-cost (predictor, external by flag)
  std::string proxy;          // zero-cost: the proxy (search/zero_cost.h); with prescreen: screen by it
  std::string proxy_weights;  // init or inherited; empty: inherited with a supernet, init otherwise
  int64_t proxy_batch = 64;   // images of the proxies' fixed batch
  std::string train;          // with space: the nas.train spec lower-fidelity training uses
  int lf_epochs = 2;
  int64_t lf_images = 5000;
  int lf_resolution = 0;
  int curve_epochs = 8;
  int curve_observe = 3;
  double curve_margin;
  std::vector<std::string> predictor_from;  // score with a predictor learnt from these nas.search files
  double max_mflops = 0;
  int64_t max_params = 0;
  double max_memory_mib = 0;
  double max_latency_ms = 0;
  std::string latency_table;   // nas.lut: predict latency instead of measuring it
  bool latency_model = false;  // with latency_table: its learned model instead of the sum
  int64_t val_images = 0;     // 0: the whole validation split
  int64_t calib_images = -1;  // -1: from the supernet's train spec
  int eval_batch = 0;  // 0: eval::default_eval_batch(device)
};
void add_search_tool_options(CLI::App& app, SearchToolOptions& o);
void run_search_tool(const SearchToolOptions& o);

struct SliceToolOptions {
  cli::CommonOptions common;
  std::string supernet;
  std::string arch;  // nas.arch, or nas.search (its best), "-" for stdin
  std::string out;
  std::string onnx;  // also write the child as ONNX (BN folded)
  std::string arch_out;  // also write the child's arch as a nas.arch file
  std::string data;
  int64_t calib_images = -1;
};
void add_slice_tool_options(CLI::App& app, SliceToolOptions& o);
void run_slice_tool(const SliceToolOptions& o);

struct BenchmarkToolOptions {
  BenchmarkToolOptions();  // the library's defaults (eval::TimingOptions, eval::LutOptions) where it has them
  cli::CommonOptions common;
  std::string model;     // child checkpoint
  std::string supernet;  // or supernet + arch
  std::string arch;
  std::string out = "-";
  std::string data;
  int batch;
  int warmup;
  int reps;               // timed runs at least
  double min_time = 0.5;  // seconds of timed repetitions at least
  double ci;              // repeat until the median's 95% interval is within +-ci (0: fixed --reps)
  double max_time;        // the cap on timed seconds per measurement (noisy when reached first)
  std::string pin_cpus;   // e.g. "0-1": restrict the process to these CPUs
  std::vector<int> throughput_batches = {64};
  int64_t test_images = -1;  // -1: the whole test set, 0: skip accuracy
  int64_t calib_images = -1;
  // --build-lut: time every operator of a search space (--space, or the supernet's) into a nas.lut
  bool build_lut = false;
  std::string space;
  int input_channels = 1, classes = 10;
  int lut_calib_archs, lut_model_archs;
  double op_max_time = 0.5;  // cap per operator
  int lut_rounds;            // passes over the operators and children
};
void add_benchmark_tool_options(CLI::App& app, BenchmarkToolOptions& o);
void run_benchmark_tool(const BenchmarkToolOptions& o);

}  // namespace nas::app
