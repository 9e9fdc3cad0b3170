#pragma once
// Shared tool plumbing: the options every tool takes, the one catch site, exit codes.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "dist/dist.h"

namespace nas::cli {

struct CommonOptions {
  int threads = 0;          // 0: all cores
  uint64_t seed = 0;
  bool seed_given = false;  // --seed was on the command line
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32, or bf16 autocast for forward passes
  int verbose = 0;
  bool quiet = false;
  bool system_malloc = false;  // keep glibc's default malloc thresholds (no tune_allocator)
  // Data-parallel processes (lib/dist): only tools that call add_distributed_options join a job
  // that a launcher set up; the others refuse to run under one.
  bool distributed = false;
  double dist_timeout = dist::GroupOptions{}.timeout_s;
  std::string dist_backend = dist::GroupOptions{}.backend;
  double bucket_mb = static_cast<double>(dist::GroupOptions{}.bucket_bytes) / (1 << 20);
};

void add_common_options(CLI::App& app, CommonOptions& o);
// --dist-timeout, --dist-backend, --bucket-mb; marks the tool as one that runs data parallel.
void add_distributed_options(CLI::App& app, CommonOptions& o);
// Sets the LibTorch thread count, log level, malloc thresholds (tune_allocator) and signal
// handlers; checks the device; joins the distributed job that the environment describes, if any
// (dist::read_launch_env): rank 0 logs, the other ranks print errors only.
void apply_common_options(const CommonOptions& o);
// The LibTorch thread count: --threads when > 0, else OMP_NUM_THREADS when set, else the usable
// cores (usable_cpus) divided among the machine's `local_world_size` data-parallel processes.
int default_threads(int threads_flag, int local_world_size);
// The line every tool logs when it ends: peak RSS, CPU seconds since the process started against
// the wall time, busy threads, the LibTorch thread count.
std::string usage_line();

struct ToolInfo {
  std::string name;
  std::string summary;
  std::string example;
};

// The exit-code table printed in every tool's --help.
std::string exit_codes_help();

// Parses argv, runs `run`, prints `<tool>: error: <message>` once on failure and returns the exit
// code (DESIGN.md §5): 0 ok, 1 runtime, 2 usage, 3 spec, 4 I/O or checkpoint, 5 interrupted,
// 6 distributed failure.
int run_tool(const ToolInfo& info, int argc, char** argv, const std::function<void(CLI::App&)>& setup,
             const std::function<void()>& run);

}  // namespace nas::cli
