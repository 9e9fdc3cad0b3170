#pragma once
// An external evaluator: a user command that reads a child's nas.arch JSON on stdin and prints JSON
// metrics on stdout, e.g. {"accuracy": 0.91, "loss": 0.3}. Each call runs `/bin/sh -c command`
// in its own process group, under a timeout; a failure (non-zero exit, timeout, unreadable
// output) is reported for that candidate and the search goes on. Torch-free.
#include <string>

#include "search/search.h"

namespace nas::search {

struct ExternalResult {
  bool ok = false;
  double accuracy = 0;  // "accuracy" (or "val_acc"), in [0, 1]
  double loss = 0;      // "loss" (or "val_loss"), optional
  // Optional costs: "mflops", "params", "memory_mib", "latency_ms" (-1: not printed). A generic
  // space's constraints are checked on them.
  double mflops = -1, memory_mib = -1, latency_ms = -1;
  int64_t params = -1;
  spec::json metrics;   // everything it printed
  std::string error;    // why it failed, one line
};

// Runs `command` with `input` on stdin; kills its process group after `timeout_s` seconds.
ExternalResult run_external(const std::string& command, const std::string& input, double timeout_s);

class ExternalEstimator : public Estimator {
 public:
  ExternalEstimator(std::string command, double timeout_s) : command_(std::move(command)), timeout_(timeout_s) {}
  std::string name() const override { return "external"; }
  Score score(const spec::Arch& arch) override;
  Score score_generic(const spec::json& child) override;

 private:
  std::string command_;
  double timeout_;
};

}  // namespace nas::search
