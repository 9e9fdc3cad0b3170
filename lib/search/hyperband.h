#pragma once
// Hyperband (Li et al., JMLR 2018) over a training estimator's epochs (Estimator::score_at):
// brackets of successive halving, from many children trained for few epochs to a few trained for
// hb_max_epochs. With s_max = floor(log_eta(max / min)), bracket s (s_max down to 0) draws
// ceil((s_max + 1) / (s + 1) * eta^s) random feasible children, trains them for max * eta^-s
// epochs, keeps the best 1/eta, trains those eta times longer, and so on up to max_epochs. The
// brackets repeat until the budget (evaluations, each rung's training one) or the time budget is
// spent.
//
// Each rung trains its children from scratch (the estimator keeps no weights between calls). Every
// evaluation is a candidate with its fidelity (epochs); the best child and the fronts count only
// those trained for max_epochs. Resumable like every search: evaluations are replayed by
// (arch hash, epochs).
#include "search/search.h"

namespace nas::search {

// The rungs of one Hyperband iteration: for each bracket, the children drawn and each rung's
// (children, epochs).
struct Rung {
  int children = 0;
  int epochs = 0;
};
std::vector<std::vector<Rung>> hyperband_brackets(int min_epochs, int max_epochs, int eta);

spec::SearchResult run_hyperband(const ArchEncoding& enc, const CostFn& cost, Estimator& est, const SearchOptions& o);

}  // namespace nas::search
