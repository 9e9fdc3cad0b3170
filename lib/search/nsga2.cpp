// NSGA-II (Deb et al., 2002) over the objectives the driver tells (Strategy::tell with a vector):
// a population of `nsga2_population` feasible children; each generation breeds as many offspring, each
// from two parents picked by binary tournament (lower front first, then larger crowding distance),
// crossed (uniform crossover) and mutated (Encoding::mutate at `mutation_prob`), the operators of
// evolution; then parents and offspring together are sorted into non-dominated fronts, and the
// next population takes whole fronts, the last one cut by crowding distance.
//
// The first population starts with the space's extremes (Encoding::extremes: the cheapest and the
// largest child of a supernet space), then random children. A front's ends are its cheapest and,
// usually, its largest child; random children rarely come near the cheapest, and the hypervolume
// counts the whole cost range above it (docs/PERFORMANCE.md, "Search strategies again", has the
// measurement). With the default reference the largest child adds no hypervolume of its own (the
// reference sits at its cost, or at a bound it exceeds: then it is infeasible and costs no
// evaluation), but it is the front's accurate end and a parent.
//
// Infeasible children (outside the bounds) never enter the population: a feasible child dominates
// every infeasible one, as in Deb's constrained domination, and the search has no degree of
// violation to rank infeasible ones by. A generation's offspring depend only on its parents, so
// they may be scored together (ask_ahead).
#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "core/error.h"
#include "search/objectives.h"
#include "search/strategy.h"

namespace nas::search {
namespace {

constexpr int kUntoldTries = 50;  // breeding attempts for an offspring not asked before

class Nsga2 : public Strategy {
 public:
  Nsga2(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {
    if (o.nsga2_extremes) extremes_ = e.extremes();
    NAS_CHECK(o.nsga2_population >= 2, UsageError,
              "nsga2: expected a population of at least 2, found " << o.nsga2_population);
  }
  std::string name() const override { return "nsga2"; }

  std::optional<Genotype> ask(Rng& rng) override {
    if (!filled_ && static_cast<int>(pop_.size()) < o_.nsga2_population) {
      if (auto e = next_extreme()) {
        origin_ = "extreme";
        asked_set_.insert(*e);
        return e;
      }
      origin_ = "random";
      Genotype g = unasked(enc_.random(rng), rng);
      asked_set_.insert(g);
      return g;
    }
    if (!filled_) {
      filled_ = true;
      rank_population();
    }
    if (queue_.empty()) breed(rng);
    origin_ = "offspring";
    Genotype g = queue_.front();
    queue_.erase(queue_.begin());
    asked_set_.insert(g);
    ++asked_;
    return g;
  }

  // Without objectives (a single-objective search), the score is the one objective.
  void tell(const Genotype& g, bool feasible, double score) override {
    const bool first_time = told_.insert(g).second;
    if (filled_) ++told_offspring_;
    if (feasible && first_time)
      (filled_ ? offspring_ : pop_).push_back({g, told_objectives().empty() ? Point{-score} : told_objectives()});
    if (filled_ && queue_.empty() && told_offspring_ == asked_) select();
  }

  bool ask_ahead(int64_t pending_feasible) const override {
    if (!filled_) return static_cast<int64_t>(pop_.size()) + pending_feasible < o_.nsga2_population;
    return !queue_.empty();
  }

 private:
  struct Member {
    Genotype g;
    Point objectives;
  };

  // The next of the space's extremes not asked for before, if any is left.
  std::optional<Genotype> next_extreme() {
    while (next_extreme_ < extremes_.size()) {
      const Genotype& g = extremes_[next_extreme_++];
      if (!asked_set_.count(g)) return g;
    }
    return std::nullopt;
  }

  // A genotype not asked for before: g, or else mutations of it.
  Genotype unasked(Genotype g, Rng& rng) const {
    for (int t = 0; t < kUntoldTries && asked_set_.count(g); ++t) g = enc_.mutate(g, rng, o_.mutation_prob);
    return g;
  }

  // Front index and crowding distance of every population member.
  void rank_population() {
    std::vector<Point> pts;
    for (const auto& m : pop_) pts.push_back(m.objectives);
    front_.assign(pop_.size(), 0);
    crowding_.assign(pop_.size(), 0.0);
    const auto fronts = nondominated_fronts(pts);
    for (size_t f = 0; f < fronts.size(); ++f) {
      const auto d = crowding_distance(pts, fronts[f]);
      for (size_t i = 0; i < fronts[f].size(); ++i) {
        front_[fronts[f][i]] = f;
        crowding_[fronts[f][i]] = d[i];
      }
    }
  }

  size_t tournament(Rng& rng) const {
    const size_t a = rng.below(pop_.size()), b = rng.below(pop_.size());
    if (front_[a] != front_[b]) return front_[a] < front_[b] ? a : b;
    return crowding_[b] > crowding_[a] ? b : a;
  }

  // The next generation's offspring, each new (not asked before, not twice in the queue) when
  // possible.
  void breed(Rng& rng) {
    std::set<Genotype> queued;
    for (int i = 0; i < o_.nsga2_population; ++i) {
      Genotype child;
      for (int t = 0; t < kUntoldTries; ++t) {
        const Genotype& a = pop_[tournament(rng)].g;
        const Genotype& b = pop_[tournament(rng)].g;
        child = enc_.mutate(enc_.crossover(a, b, rng), rng, o_.mutation_prob);
        if (!asked_set_.count(child) && !queued.count(child)) break;
      }
      queued.insert(child);
      queue_.push_back(child);
    }
    asked_ = told_offspring_ = 0;
  }

  // Parents and offspring together; the best `nsga2_population` by front, then crowding distance.
  void select() {
    std::vector<Member> all = pop_;
    all.insert(all.end(), offspring_.begin(), offspring_.end());
    offspring_.clear();
    std::vector<Point> pts;
    for (const auto& m : all) pts.push_back(m.objectives);
    std::vector<Member> next;
    for (const auto& front : nondominated_fronts(pts)) {
      if (next.size() >= static_cast<size_t>(o_.nsga2_population)) break;
      std::vector<size_t> order(front.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      const auto d = crowding_distance(pts, front);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d[a] > d[b]; });
      for (size_t i : order)
        if (next.size() < static_cast<size_t>(o_.nsga2_population)) next.push_back(all[front[i]]);
    }
    pop_ = std::move(next);
    rank_population();
  }

  const Encoding& enc_;
  StrategyOptions o_;
  std::vector<Member> pop_, offspring_;
  std::vector<size_t> front_;
  std::vector<double> crowding_;
  std::vector<Genotype> queue_;  // this generation's offspring not asked yet
  std::vector<Genotype> extremes_;
  size_t next_extreme_ = 0;
  std::set<Genotype> told_;
  // Every child asked for: the random phase's batches (ask_ahead) must not repeat a child whose
  // tell is pending.
  std::set<Genotype> asked_set_;
  int64_t asked_ = 0, told_offspring_ = 0;  // this generation's offspring
  bool filled_ = false;
};

}  // namespace

std::unique_ptr<Strategy> make_nsga2(const Encoding& enc, const StrategyOptions& o) {
  return std::make_unique<Nsga2>(enc, o);
}

}  // namespace nas::search
