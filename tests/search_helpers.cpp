#include "search_helpers.h"

#include <algorithm>
#include <map>
#include <string>

#include "search/search.h"

namespace nas::test {
namespace {
spec::json decisions(int n, int options, bool names) {
  spec::json d = spec::json::array();
  for (int i = 0; i < n; ++i) {
    spec::json ch = spec::json::array();
    for (int k = 0; k < options; ++k) {
      if (names)
        ch.push_back("o" + std::to_string(k));
      else
        ch.push_back(k);
    }
    d.push_back({{"name", "x" + std::to_string(i)}, {"choices", ch}});
  }
  return d;
}
}  // namespace

spec::json generic_decisions(int n, int options) { return decisions(n, options, false); }
spec::json categorical_decisions(int n, int options) { return decisions(n, options, true); }

double drive(search::Strategy& st, const search::Encoding& enc, const Objective& f, int budget, uint64_t seed,
             int* distinct, int* asks) {
  Rng rng(seed);
  std::map<std::string, double> cache;
  double best = -1e300;
  int idle = 0, n = 0;
  while (static_cast<int>(cache.size()) < budget && idle < 2000) {
    auto g = st.ask(rng);
    if (!g) break;
    ++n;
    enc.check(*g, "ask");
    std::string k = enc.key(*g);
    auto it = cache.find(k);
    double v = it != cache.end() ? it->second : f(*g);
    idle = it != cache.end() ? idle + 1 : 0;
    cache[k] = v;
    best = std::max(best, v);
    st.tell(*g, true, v);
  }
  if (distinct) *distinct = static_cast<int>(cache.size());
  if (asks) *asks = n;
  return best;
}

double random_search_mean(const search::Encoding& enc, const Objective& f, const search::StrategyOptions& o) {
  double mean = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto r = search::make_strategy("random", enc, o);
    mean += drive(*r, enc, f, static_cast<int>(o.budget), seed) / 10;
  }
  return mean;
}

std::vector<std::string> strategies_not_beating_random(const search::Encoding& enc, const Objective& f, int budget) {
  search::StrategyOptions o;
  o.budget = budget;
  const double random_mean = random_search_mean(enc, f, o);
  std::vector<std::string> out;
  for (const auto& name : search::strategy_names()) {
    if (name == "random" || name == "grid") continue;
    auto st = search::make_any_strategy(name, enc, o, 1);
    const double best = drive(*st, enc, f, budget, 1);
    if (!(best > random_mean))
      out.push_back(name + ": best " + std::to_string(best) + ", random " + std::to_string(random_mean));
  }
  return out;
}

}  // namespace nas::test
