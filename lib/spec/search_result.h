#pragma once
// nas.search: constraints, strategy, every evaluated candidate, the best and the Pareto front.
#include <cstdint>
#include <string>
#include <vector>

#include "spec/arch.h"
#include "spec/document.h"
#include "spec/search_space.h"

namespace nas::spec {

inline constexpr const char* kSearchKind = "nas.search";
inline constexpr int kSearchVersion = 1;

struct Constraints {
  double max_mflops = 0;       // 0: unbounded
  int64_t max_params = 0;      // 0: unbounded
  double max_memory_mib = 0;   // weights + peak activations at batch 1 (analytic); 0: unbounded
  double max_latency_ms = 0;   // measured on this machine at batch 1; 0: unbounded
  bool admits(double mflops, int64_t params, double memory_mib = 0, double latency_ms = 0) const {
    return (max_mflops <= 0 || mflops <= max_mflops) && (max_params <= 0 || params <= max_params) &&
           (max_memory_mib <= 0 || memory_mib <= max_memory_mib) && (max_latency_ms <= 0 || latency_ms <= max_latency_ms);
  }
};

struct Candidate {
  int index = 0;
  Arch arch;                  // the child, in a family's space (generic ones: generic_arch)
  json generic_arch;          // the child in generic spaces ({kind: nas.arch, space, choices}); null otherwise
  std::string hash;
  double mflops = 0;
  int64_t params = 0;
  double memory_mib = 0;      // weights + peak activations at batch 1, fp32 (analytic)
  double latency_ms = -1;     // measured at batch 1 when a latency bound asked for it; -1: not measured
  bool feasible = true;       // within the constraints
  bool evaluated = false;     // infeasible candidates are not scored
  double val_acc = 0;         // top-1 on the validation images, in [0, 1]
  double val_loss = 0;
  std::string estimator;      // how the score was obtained
  std::string estimator_detail;  // e.g. "stopped after 3 of 10 epochs; extrapolated"
  std::string origin;         // which step of the strategy proposed it
  double eval_seconds = 0;
  std::string error;          // why the estimator could not score it (evaluated is then false)
  bool screened = false;      // pre-screened out by the accuracy predictor (not evaluated)
  double predicted_acc = 0;   // the predictor's estimate, when screened
  double hypervolume = -1;    // multi-objective searches: the front's hypervolume after this candidate; -1: none
  int fidelity = 0;           // hyperband: the epochs it was trained for (0: one fidelity only)
};

// A multi-objective search's outcome (nas-search --objectives; its objectives and reference point
// are part of the SearchIdentity): the final hypervolume and the front over all the objectives.
struct MultiObjective {
  double hypervolume = 0;
  std::vector<int> front;  // candidate indices, by increasing first cost
};

// What makes a search the one it is. A search resumes only when everything here equals the stopped
// search's (identity_differences), the ranks of a distributed search check that they hold the same
// (to_json), and nas.search records it at its top level.
struct SearchIdentity {
  std::string space;
  std::string family = kDefaultFamily;  // the space's family (or kGenericFamily): its candidates' arch form
  std::string space_hash;  // the hash of the space's canonical form (search::Encoding); empty in older files
  std::string supernet;
  std::string strategy;
  uint64_t seed = 0;
  int64_t budget = 0;
  double time_budget = 0;                  // seconds; 0: none
  json strategy_options = json::object();  // the strategy's settings (population, ...)
  Constraints constraints;
  int64_t val_images = 0;
  int64_t calib_images = 0;
  std::string evaluator;   // the external evaluator command, when one scored the candidates
  json estimator_options;  // the estimator and its settings (null in older files)
  // A multi-objective search: two or three of accuracy, mflops, params, latency_ms, memory_mib
  // (empty: accuracy alone), and the hypervolume's reference point in the objectives' own units
  // (accuracy as a fraction).
  std::vector<std::string> objectives;
  std::vector<double> hv_reference;
  bool multi_objective() const { return !objectives.empty(); }
};

// The settings in which `now` differs from the `stopped` search, named by the nas-search flags
// that set them; empty when `now` may resume `stopped`. Fields that older files lack (space_hash,
// estimator_options) match anything.
std::vector<std::string> identity_differences(const SearchIdentity& stopped, const SearchIdentity& now);
bool operator==(const SearchIdentity& a, const SearchIdentity& b);
inline bool operator!=(const SearchIdentity& a, const SearchIdentity& b) { return !(a == b); }
// The identity as nas.search writes it (estimator_settings and multi_objective.objectives /
// hv_reference included).
json to_json(const SearchIdentity& id);

struct SearchResult : SearchIdentity {
  json predictor;         // the accuracy predictor's settings and last validation report, or null
  json relaxation;        // DARTS: the final softmax weights of every edge and the derived cells, or null
  std::vector<Candidate> candidates;
  int best = -1;               // index into candidates, -1 when none is feasible
  std::vector<int> pareto;         // indices: accuracy vs MFLOPs front of the feasible, evaluated ones
  std::vector<int> pareto_params;  // indices: accuracy vs params front
  std::vector<int> pareto_memory;  // accuracy vs memory_mib
  std::vector<int> pareto_latency; // accuracy vs latency_ms (candidates whose latency was measured)
  MultiObjective multi;            // multi_objective() searches only
  double total_seconds = 0;
  double eval_seconds = 0;
  int64_t cache_hits = 0;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM before the budget was spent
  std::string created;
  std::string commit;
};

json to_json(const Candidate& c);
json to_json(const SearchResult& r);
// Embedded archs are read by `read_arch`. Call families::search_result_from_json and
// families::load_search_result instead: they pass the families' reader and check the family name.
SearchResult search_result_from_json(const json& j, const std::string& file, const ArchReader& read_arch);
SearchResult load_search_result(const std::string& path, const ArchReader& read_arch);

// Indices of the candidates on the front (maximize val_acc, minimize the cost: "mflops", "params",
// "memory_mib" or "latency_ms"), by increasing cost.
std::vector<int> pareto_front(const std::vector<Candidate>& cands, const std::string& cost = "mflops");

}  // namespace nas::spec
