#pragma once
// Helpers of the search tests: generic spaces of numbered options, a small ask/tell driver and
// random search's bar.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "search/encoding.h"
#include "search/strategy.h"
#include "spec/document.h"

namespace nas::test {

using Objective = std::function<double(const search::Genotype&)>;

// `n` decisions x0, x1, ... with the options 0 .. options-1 (numbers: ordered).
spec::json generic_decisions(int n, int options);
// The same with the options "o0", "o1", ... (strings: unordered).
spec::json categorical_decisions(int n, int options);

// A tiny driver like run_search's, over any encoding and objective: ask, cache by key, tell.
// Returns the best score found within `budget` distinct evaluations; `distinct` gets their number
// and `asks` the number of proposals it took.
double drive(search::Strategy& st, const search::Encoding& enc, const Objective& f, int budget, uint64_t seed,
             int* distinct = nullptr, int* asks = nullptr);

// Random search's typical best at o.budget, over 10 seeds: the bar the other strategies must clear.
double random_search_mean(const search::Encoding& enc, const Objective& f, const search::StrategyOptions& o);

// Every strategy but random and grid, driven for `budget` evaluations (seed 1): those whose best
// does not beat random_search_mean, as "name: best B, random R" (empty: all beat it).
std::vector<std::string> strategies_not_beating_random(const search::Encoding& enc, const Objective& f, int budget);

}  // namespace nas::test
