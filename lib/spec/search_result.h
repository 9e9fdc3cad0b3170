#pragma once
// nas.search: constraints, strategy, every evaluated candidate, the best and the Pareto front.
#include <cstdint>
#include <string>
#include <vector>

#include "spec/arch.h"
#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kSearchKind = "nas.search";
inline constexpr int kSearchVersion = 1;

struct Constraints {
  double max_mflops = 0;  // 0: unbounded
  int64_t max_params = 0;  // 0: unbounded
  bool admits(double mflops, int64_t params) const {
    return (max_mflops <= 0 || mflops <= max_mflops) && (max_params <= 0 || params <= max_params);
  }
};

struct Candidate {
  int index = 0;
  Arch arch;
  std::string hash;
  double mflops = 0;
  int64_t params = 0;
  bool feasible = true;       // within the constraints
  bool evaluated = false;     // infeasible candidates are not scored
  double val_acc = 0;         // top-1 on the validation images, in [0, 1]
  double val_loss = 0;
  std::string estimator;      // how the score was obtained
  std::string origin;         // which step of the strategy proposed it
  double eval_seconds = 0;
};

struct SearchResult {
  std::string space;
  std::string supernet;
  std::string strategy;
  uint64_t seed = 0;
  int64_t budget = 0;
  Constraints constraints;
  int64_t val_images = 0;
  int64_t calib_images = 0;
  std::vector<Candidate> candidates;
  int best = -1;               // index into candidates, -1 when none is feasible
  std::vector<int> pareto;     // indices: accuracy vs MFLOPs front of the feasible, evaluated ones
  double total_seconds = 0;
  double eval_seconds = 0;
  int64_t cache_hits = 0;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM before the budget was spent
  std::string created;
  std::string commit;
};

json to_json(const Candidate& c);
json to_json(const SearchResult& r);
SearchResult search_result_from_json(const json& j, const std::string& file);
SearchResult load_search_result(const std::string& path);

// Indices of the candidates on the front (maximize val_acc, minimize mflops), by increasing MFLOPs.
std::vector<int> pareto_front(const std::vector<Candidate>& cands);

}  // namespace nas::spec
