#include "search/objectives.h"

#include <algorithm>
#include <limits>
#include <set>

#include "core/error.h"

namespace nas::search {

const std::vector<std::string>& objective_names() {
  static const std::vector<std::string> n = {"accuracy", "mflops", "params", "latency_ms", "memory_mib"};
  return n;
}

void check_objectives(const std::vector<std::string>& names) {
  std::string all;
  for (const auto& n : objective_names()) all += (all.empty() ? "" : ", ") + n;
  NAS_CHECK(names.size() >= 2 && names.size() <= 3, UsageError,
            "--objectives: expected two or three of " << all << ", found " << names.size());
  std::set<std::string> seen;
  for (const auto& n : names) {
    NAS_CHECK(std::count(objective_names().begin(), objective_names().end(), n) == 1, UsageError,
              "--objectives: expected one of " << all << ", found " << n);
    NAS_CHECK(seen.insert(n).second, UsageError, "--objectives: " << n << " is given twice");
  }
}

double objective_value(const spec::Candidate& c, const std::string& name) {
  if (name == "accuracy") return c.val_acc;
  if (name == "mflops") return c.mflops;
  if (name == "params") return static_cast<double>(c.params);
  if (name == "latency_ms") return c.latency_ms;
  if (name == "memory_mib") return c.memory_mib;
  throw Error("objective_value: unknown objective " + name);
}

Point minimized(const std::vector<std::string>& names, const std::vector<double>& values) {
  Point p(values.size());
  for (size_t i = 0; i < values.size(); ++i) p[i] = names[i] == "accuracy" ? -values[i] : values[i];
  return p;
}

Point objective_point(const spec::Candidate& c, const std::vector<std::string>& names) {
  std::vector<double> v;
  for (const auto& n : names) v.push_back(objective_value(c, n));
  return minimized(names, v);
}

bool dominates(const Point& a, const Point& b) {
  bool better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    better = better || a[i] < b[i];
  }
  return better;
}

std::vector<std::vector<size_t>> nondominated_fronts(const std::vector<Point>& points) {
  const size_t n = points.size();
  std::vector<std::vector<size_t>> dominated(n);  // the points each one dominates
  std::vector<size_t> dominators(n, 0);           // how many points dominate each one
  std::vector<std::vector<size_t>> fronts(1);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (dominates(points[i], points[j])) dominated[i].push_back(j);
      else if (dominates(points[j], points[i])) ++dominators[i];
    }
    if (dominators[i] == 0) fronts[0].push_back(i);
  }
  while (!fronts.back().empty()) {
    std::vector<size_t> next;
    for (size_t i : fronts.back())
      for (size_t j : dominated[i])
        if (--dominators[j] == 0) next.push_back(j);
    std::sort(next.begin(), next.end());
    fronts.push_back(next);
  }
  fronts.pop_back();
  return fronts;
}

std::vector<double> crowding_distance(const std::vector<Point>& points, const std::vector<size_t>& front) {
  const size_t m = front.size();
  std::vector<double> d(m, 0.0);
  if (m == 0) return d;
  const double inf = std::numeric_limits<double>::infinity();
  for (size_t k = 0; k < points[front[0]].size(); ++k) {
    std::vector<size_t> order(m);
    for (size_t i = 0; i < m; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return points[front[a]][k] < points[front[b]][k]; });
    const double lo = points[front[order.front()]][k], hi = points[front[order.back()]][k];
    d[order.front()] = d[order.back()] = inf;
    if (!(hi > lo)) continue;
    for (size_t i = 1; i + 1 < m; ++i)
      d[order[i]] += (points[front[order[i + 1]]][k] - points[front[order[i - 1]]][k]) / (hi - lo);
  }
  return d;
}

namespace {
// Two objectives: the staircase's area, sweeping by the first objective.
double hypervolume_2d(std::vector<Point> pts, const Point& ref) {
  std::sort(pts.begin(), pts.end());
  double hv = 0, floor = ref[1];
  for (const auto& p : pts) {
    if (p[1] >= floor) continue;  // dominated by a point before it
    hv += (ref[0] - p[0]) * (floor - p[1]);
    floor = p[1];
  }
  return hv;
}
}  // namespace

double hypervolume(const std::vector<Point>& points, const Point& reference) {
  NAS_CHECK(reference.size() == 2 || reference.size() == 3, Error,
            "hypervolume: expected 2 or 3 objectives, found " << reference.size());
  std::vector<Point> inside;
  for (const auto& p : points) {
    bool in = true;
    for (size_t i = 0; i < p.size(); ++i) in = in && p[i] < reference[i];
    if (in) inside.push_back(p);
  }
  if (reference.size() == 2) return hypervolume_2d(inside, reference);
  // Three objectives: slices along the third, each the 2-D hypervolume of the points below it.
  std::sort(inside.begin(), inside.end(), [](const Point& a, const Point& b) { return a[2] < b[2]; });
  double hv = 0;
  std::vector<Point> below;
  for (size_t i = 0; i < inside.size(); ++i) {
    below.push_back({inside[i][0], inside[i][1]});
    const double top = i + 1 < inside.size() ? inside[i + 1][2] : reference[2];
    if (top > inside[i][2]) hv += hypervolume_2d(below, {reference[0], reference[1]}) * (top - inside[i][2]);
  }
  return hv;
}

double HypervolumeTracker::add(const Point& p) {
  for (const auto& q : front_)
    if (dominates(q, p) || q == p) return value_;
  front_.erase(std::remove_if(front_.begin(), front_.end(), [&](const Point& q) { return dominates(p, q); }),
               front_.end());
  front_.push_back(p);
  value_ = hypervolume(front_, reference_);
  return value_;
}

std::vector<int> objectives_front(const std::vector<spec::Candidate>& cands, const std::vector<std::string>& names) {
  std::vector<int> idx;
  std::vector<Point> pts;
  for (const auto& c : cands) {
    if (!c.feasible || !c.evaluated) continue;
    bool complete = true;
    for (const auto& n : names) complete = complete && (n == "accuracy" || objective_value(c, n) >= 0);
    if (!complete) continue;
    idx.push_back(c.index);
    pts.push_back(objective_point(c, names));
  }
  std::vector<int> front;
  if (pts.empty()) return front;
  const auto fronts = nondominated_fronts(pts);
  for (size_t i : fronts[0]) front.push_back(idx[i]);
  const size_t cost = names[0] == "accuracy" ? 1 : 0;
  std::sort(front.begin(), front.end(), [&](int a, int b) {
    const Point pa = objective_point(cands[static_cast<size_t>(a)], names);
    const Point pb = objective_point(cands[static_cast<size_t>(b)], names);
    return pa[cost] != pb[cost] ? pa[cost] < pb[cost] : a < b;
  });
  return front;
}

}  // namespace nas::search
