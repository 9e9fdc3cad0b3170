#pragma once
// The objectives of a multi-objective search (nas-search --objectives): accuracy, maximized, and
// costs, minimized. Internally every objective is minimized (accuracy enters negated), so one
// dominance test, one non-dominated sort and one hypervolume serve them all. Torch-free.
#include <string>
#include <vector>

#include "spec/search_result.h"

namespace nas::search {

using Point = std::vector<double>;  // one value per objective, each minimized

// Names --objectives accepts: accuracy, mflops, params, latency_ms, memory_mib.
const std::vector<std::string>& objective_names();
// UsageError unless `names` lists two or three distinct objective names.
void check_objectives(const std::vector<std::string>& names);
// A candidate's objectives in their own units (accuracy as val_acc), and -1 for a cost it lacks.
double objective_value(const spec::Candidate& c, const std::string& name);
// The minimized point of a value vector in the objectives' own units (accuracy negated).
Point minimized(const std::vector<std::string>& names, const std::vector<double>& values);
// The candidate's minimized point.
Point objective_point(const spec::Candidate& c, const std::vector<std::string>& names);

// Whether a is no worse than b in every objective and better in one.
bool dominates(const Point& a, const Point& b);
// Non-dominated sorting (NSGA-II): the indices of `points` by front, the first front first.
std::vector<std::vector<size_t>> nondominated_fronts(const std::vector<Point>& points);
// NSGA-II's crowding distance of each member of `front` (infinite at each objective's extremes).
std::vector<double> crowding_distance(const std::vector<Point>& points, const std::vector<size_t>& front);
// The volume that `points` dominate inside the box bounded by `reference` (all minimized); points
// not better than the reference in every objective add nothing. Two or three objectives.
double hypervolume(const std::vector<Point>& points, const Point& reference);

// The hypervolume of a search's front as it grows, one candidate at a time: the non-dominated
// points seen so far, and their hypervolume.
class HypervolumeTracker {
 public:
  explicit HypervolumeTracker(Point reference) : reference_(std::move(reference)) {}
  // Adds a point; returns the hypervolume after it.
  double add(const Point& p);
  double value() const { return value_; }

 private:
  Point reference_;
  std::vector<Point> front_;
  double value_ = 0;
};

// Indices of the feasible, evaluated candidates on the front of `names` (no other candidate is as
// good in every objective and better in one), by increasing first cost.
std::vector<int> objectives_front(const std::vector<spec::Candidate>& cands, const std::vector<std::string>& names);

}  // namespace nas::search
