#include "search/strategy.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>

#include "core/error.h"

namespace nas::search {
namespace {

// ---- random ----
class RandomStrategy : public Strategy {
 public:
  explicit RandomStrategy(const Encoding& e) : enc_(e) {}
  std::string name() const override { return "random"; }
  std::optional<Genotype> ask(Rng& rng) override {
    origin_ = "random";
    return enc_.random(rng);
  }
  void tell(const Genotype&, bool, double) override {}
  bool ask_ahead(int64_t) const override { return true; }

 private:
  const Encoding& enc_;
};

// ---- grid: every canonical genotype once, in mixed-radix order (the last decision fastest) ----
class GridStrategy : public Strategy {
 public:
  explicit GridStrategy(const Encoding& e) : enc_(e), next_(e.size(), 0) {}
  std::string name() const override { return "grid"; }
  std::optional<Genotype> ask(Rng&) override {
    origin_ = "grid";
    while (!done_) {
      Genotype g = next_;
      advance();
      if (enc_.canonical(g) == g) return g;  // skip the copies that differ in inactive decisions
    }
    return std::nullopt;
  }
  void tell(const Genotype&, bool, double) override {}
  bool ask_ahead(int64_t) const override { return true; }

 private:
  void advance() {
    for (size_t i = next_.size(); i-- > 0;) {
      if (++next_[i] < enc_.decisions()[i].size()) return;
      next_[i] = 0;
    }
    done_ = true;
  }
  const Encoding& enc_;
  Genotype next_;
  bool done_ = false;
};

// The best `k` genotypes told so far (by score, earlier first on ties).
struct Leaderboard {
  std::vector<std::pair<double, Genotype>> items;  // in tell order
  void add(const Genotype& g, double s) { items.emplace_back(s, g); }
  std::vector<const Genotype*> top(size_t k) const {
    std::vector<size_t> idx(items.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return items[a].first > items[b].first; });
    std::vector<const Genotype*> out;
    for (size_t i = 0; i < idx.size() && out.size() < k; ++i) out.push_back(&items[idx[i]].second);
    return out;
  }
};

// ---- BigNAS coarse-to-fine ----
// Coarse: every combination of global levels, one per decision group (mbconv: resolution, depth,
// width, expand, kernel), 3 levels per group when the grid fits in half the budget, else 2; when
// even that grid is larger than half the budget, a seeded subset. Infeasible points cost nothing.
// Fine: mutations of the current best top_k until the budget is spent.
class CoarseToFine : public Strategy {
 public:
  CoarseToFine(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {
    for (const auto& d : e.decisions())
      if (d.ordered && std::find(groups_.begin(), groups_.end(), d.group) == groups_.end()) groups_.push_back(d.group);
    coarse_budget_ = std::max<int64_t>(1, o.budget / 2);
  }
  std::string name() const override { return "coarse-to-fine"; }

  std::optional<Genotype> ask(Rng& rng) override {
    if (!grid_built_) build_grid(rng);
    if (feasible_coarse_ < coarse_budget_ && next_ < grid_.size()) {
      origin_ = "coarse";
      return grid_[next_++];
    }
    auto parents = board_.top(static_cast<size_t>(std::max(1, o_.top_k)));
    if (parents.empty()) {  // no feasible grid point: start anywhere
      origin_ = "random";
      return enc_.random(rng);
    }
    origin_ = "mutation";
    return enc_.mutate(*parents[turn_++ % parents.size()], rng, o_.mutation_prob);
  }
  void tell(const Genotype& g, bool feasible, double score) override {
    if (!feasible) return;
    if (feasible_coarse_ < coarse_budget_ && in_grid_.count(g)) ++feasible_coarse_;
    board_.add(g, score);
  }
  // The coarse grid's points come in a fixed order; the fine phase mutates the best of them.
  bool ask_ahead(int64_t pending_feasible) const override {
    return grid_built_ && next_ < grid_.size() && feasible_coarse_ + pending_feasible < coarse_budget_;
  }

 private:
  void build_grid(Rng& rng) {
    grid_built_ = true;
    const size_t G = groups_.size();
    auto count = [&](size_t levels) { return std::pow(static_cast<double>(levels), static_cast<double>(G)); };
    std::vector<double> levels = count(3) <= static_cast<double>(coarse_budget_) ? std::vector<double>{0, 0.5, 1}
                                                                                  : std::vector<double>{0, 1};
    std::vector<std::vector<double>> points;
    if (count(levels.size()) <= 4096) {
      std::vector<size_t> idx(G, 0);
      while (true) {
        std::vector<double> p(G);
        for (size_t i = 0; i < G; ++i) p[i] = levels[idx[i]];
        points.push_back(p);
        size_t i = G;
        while (i-- > 0 && ++idx[i] == levels.size()) idx[i] = 0;
        if (i == static_cast<size_t>(-1)) break;
      }
    } else {
      for (int n = 0; n < 4096; ++n) {
        std::vector<double> p(G);
        for (auto& v : p) v = levels[rng.below(levels.size())];
        points.push_back(p);
      }
    }
    std::set<Genotype> seen;
    for (const auto& p : points) {
      Genotype g(enc_.size());
      for (size_t i = 0; i < g.size(); ++i) {
        const auto& d = enc_.decisions()[i];
        if (!d.ordered) continue;  // holds its first option; the fine phase moves it
        size_t gi = static_cast<size_t>(std::find(groups_.begin(), groups_.end(), d.group) - groups_.begin());
        g[i] = static_cast<int>(std::lround(p[gi] * (d.size() - 1)));
      }
      g = enc_.canonical(g);
      if (seen.insert(g).second) grid_.push_back(g);  // levels coincide on small option sets
    }
    if (grid_.size() == 1) {
      // Nothing ordered to sweep (only unordered choices, such as a cell's ops): the uniform
      // children instead, every unordered decision at its k-th option in turn (every edge the same op).
      const Genotype base = grid_.front();
      int most = 1;
      for (const auto& d : enc_.decisions()) most = std::max(most, d.ordered ? 1 : d.size());
      for (int k = 1; k < most; ++k) {
        Genotype g = base;
        for (size_t i = 0; i < g.size(); ++i)
          if (!enc_.decisions()[i].ordered) g[i] = std::min(k, enc_.decisions()[i].size() - 1);
        g = enc_.canonical(g);
        if (seen.insert(g).second) grid_.push_back(g);
      }
    }
    rng.shuffle(grid_);
    in_grid_ = seen;
  }
  const Encoding& enc_;
  StrategyOptions o_;
  std::vector<std::string> groups_;
  int64_t coarse_budget_ = 1;
  bool grid_built_ = false;
  std::vector<Genotype> grid_;
  std::set<Genotype> in_grid_;
  size_t next_ = 0;
  int64_t feasible_coarse_ = 0;
  Leaderboard board_;
  size_t turn_ = 0;
};

// ---- regularized (aging) evolution, Real et al. 2019 ----
// The population is a queue of the last `population` feasible children; each new child mutates
// the best of `sample_size` members drawn at random (with crossover: the best two of the sample
// are crossed first); the oldest member dies.
class Evolution : public Strategy {
 public:
  Evolution(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {
    NAS_CHECK(o.population >= 2 && o.sample_size >= 1 && o.sample_size <= o.population, UsageError,
              "evolution: expected population >= 2 and 1 <= sample size <= population, found population "
                  << o.population << ", sample size " << o.sample_size);
  }
  std::string name() const override { return "evolution"; }
  std::optional<Genotype> ask(Rng& rng) override {
    if (static_cast<int>(pop_.size()) < o_.population && !filled_) {
      origin_ = "random";
      return enc_.random(rng);
    }
    filled_ = true;
    origin_ = o_.crossover ? "crossover" : "mutation";
    std::vector<size_t> sample;
    for (int i = 0; i < o_.sample_size; ++i) sample.push_back(rng.below(pop_.size()));
    std::stable_sort(sample.begin(), sample.end(), [&](size_t a, size_t b) { return pop_[a].first > pop_[b].first; });
    Genotype parent = pop_[sample[0]].second;
    if (o_.crossover && sample.size() > 1) parent = enc_.crossover(parent, pop_[sample[1]].second, rng);
    return enc_.mutate(parent, rng, o_.mutation_prob);
  }
  void tell(const Genotype& g, bool feasible, double score) override {
    if (!feasible) return;
    pop_.emplace_back(score, g);
    if (static_cast<int>(pop_.size()) > o_.population) pop_.pop_front();
  }
  // The first population is random; after it, each child mutates members chosen by score.
  bool ask_ahead(int64_t pending_feasible) const override {
    return !filled_ && static_cast<int64_t>(pop_.size()) + pending_feasible < o_.population;
  }

 private:
  const Encoding& enc_;
  StrategyOptions o_;
  std::deque<std::pair<double, Genotype>> pop_;
  bool filled_ = false;
};

// ---- hill climbing with restarts (first improvement over the one-step neighbourhood) ----
class HillClimbing : public Strategy {
 public:
  HillClimbing(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {}
  std::string name() const override { return "hill-climbing"; }
  std::optional<Genotype> ask(Rng& rng) override {
    origin_ = "restart";
    if (!has_current_) return enc_.random(rng);  // a (re)start
    if (pending_.empty()) {
      // A local optimum: every neighbour tried without improvement. Restart elsewhere.
      if (++restarts_ > o_.restarts) return std::nullopt;
      has_current_ = false;
      return enc_.random(rng);
    }
    origin_ = "neighbour";
    Genotype n = pending_.back();
    pending_.pop_back();
    return n;
  }
  void tell(const Genotype& g, bool feasible, double score) override {
    if (!has_current_) {
      if (!feasible) return;  // keep restarting until a feasible start
      move_to(g, score);
      return;
    }
    if (feasible && score > score_) move_to(g, score);
  }

 private:
  void move_to(const Genotype& g, double score) {
    has_current_ = true;
    current_ = g;
    score_ = score;
    pending_ = enc_.neighbours(g);
    // Tried in a fixed, seed-independent order: reversed so that pop_back() takes the first.
    std::reverse(pending_.begin(), pending_.end());
  }
  const Encoding& enc_;
  StrategyOptions o_;
  bool has_current_ = false;
  Genotype current_;
  double score_ = 0;
  std::vector<Genotype> pending_;
  int restarts_ = 0;
};

// ---- REINFORCE with per-decision logits and a moving-average baseline (Williams 1992) ----
// The policy samples each active decision from softmax(logits); after each reward R the logits
// of the sampled decisions move by lr * (R - baseline) / scale * (onehot - p), plus an optional
// entropy bonus. R is the score; an infeasible child earns the worst score seen so far. `scale`
// is the running standard deviation of the rewards, so lr does not depend on the score's units.
class Reinforce : public Strategy {
 public:
  Reinforce(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {
    for (const auto& d : e.decisions()) logits_.emplace_back(static_cast<size_t>(d.size()), 0.0);
  }
  std::string name() const override { return "reinforce"; }
  std::optional<Genotype> ask(Rng& rng) override {
    origin_ = "policy";
    Genotype g(enc_.size(), 0);
    for (size_t i = 0; i < g.size(); ++i) {
      if (!enc_.active(g, i)) continue;  // decided in order: activity depends on earlier decisions
      auto p = probs(i);
      double u = rng.uniform(), c = 0;
      int k = static_cast<int>(p.size()) - 1;
      for (size_t j = 0; j < p.size(); ++j) {
        c += p[j];
        if (u < c) {
          k = static_cast<int>(j);
          break;
        }
      }
      g[i] = k;
    }
    return g;
  }
  void tell(const Genotype& g, bool feasible, double score) override {
    if (feasible) worst_ = seen_ ? std::min(worst_, score) : score;
    if (!feasible && !seen_) return;  // nothing to compare with yet
    seen_ = true;
    double r = feasible ? score : worst_;
    ++n_;
    double delta = r - mean_;
    mean_ += delta / static_cast<double>(n_);
    m2_ += delta * (r - mean_);
    double sd = n_ > 1 ? std::sqrt(m2_ / static_cast<double>(n_ - 1)) : 0.0;
    if (!has_baseline_) {
      baseline_ = r;
      has_baseline_ = true;
      return;
    }
    double adv = (r - baseline_) / (sd > 1e-12 ? sd : 1.0);
    for (size_t i = 0; i < g.size(); ++i) {
      if (!enc_.active(g, i)) continue;
      auto p = probs(i);
      double H = 0;  // entropy; d(H)/d(logit_j) = -p_j (log p_j + H)
      for (double q : p) H -= q > 0 ? q * std::log(q) : 0;
      for (size_t j = 0; j < p.size(); ++j) {
        double grad = adv * ((static_cast<int>(j) == g[i] ? 1.0 : 0.0) - p[j]);
        if (o_.rl_entropy > 0 && p[j] > 0) grad += o_.rl_entropy * (-p[j] * (std::log(p[j]) + H));
        logits_[i][j] += o_.rl_lr * grad;
      }
    }
    baseline_ = o_.rl_baseline_decay * baseline_ + (1 - o_.rl_baseline_decay) * r;
  }

 private:
  std::vector<double> probs(size_t i) const {
    const auto& l = logits_[i];
    double m = *std::max_element(l.begin(), l.end()), z = 0;
    std::vector<double> p(l.size());
    for (size_t j = 0; j < l.size(); ++j) z += (p[j] = std::exp(l[j] - m));
    for (double& q : p) q /= z;
    return p;
  }
  const Encoding& enc_;
  StrategyOptions o_;
  std::vector<std::vector<double>> logits_;
  double baseline_ = 0, worst_ = 0, mean_ = 0, m2_ = 0;
  int64_t n_ = 0;
  bool has_baseline_ = false, seen_ = false;
};

// ---- Monte Carlo tree search: UCT over the sequence of decisions, with shared option values ----
// A node is a prefix of decisions. Each ask descends from the root: at a node with untried options
// it expands one (and adds that child node), else it takes the option maximizing
// mean + c * range * sqrt(ln N / n); below the new node the remaining decisions are the rollout.
// Inactive decisions and those of one option are fixed at option 0 and do not branch. The reward (the score; an infeasible
// child earns the worst score seen) is backed up along the path.
// A budget of a few hundred children over a dozen decisions grows a tree only two or three levels
// deep, so the rollout decides most of each child, and a uniform rollout makes MCTS a random search.
// So the rollout, and the choice among a node's untried options, use every child's reward: each
// (decision, option) keeps the mean reward of the children that took it (MAST: Finnsson and
// Bjornsson, 2008); an option no child has taken comes first, else one drawn with probability
// proportional to exp(mean / temperature) (StrategyOptions::mast_temperature, in units of the
// observed range). A node whose every child has been proposed is done and never selected again, so
// a small space is enumerated to the end. On the cell space bench (nas-bench-strategies, 20 seeds)
// the evaluations to reach random search's 500-evaluation best went from over 150 (5 of 20 seeds
// reached it within 150) to 36 (18 of 20). A tree constant c of 0 did as well there (33) but locks
// the first decisions on a lucky early score: on the mlp space's test objective it kept depth 2 for
// good on two of three seeds.
class Mcts : public Strategy {
 public:
  Mcts(const Encoding& e, const StrategyOptions& o) : enc_(e), o_(o) {
    nodes_.push_back(Node{});
    for (const auto& d : enc_.decisions()) shared_.emplace_back(static_cast<size_t>(d.size()));
  }
  std::string name() const override { return "mcts"; }
  std::optional<Genotype> ask(Rng& rng) override {
    origin_ = "uct";
    if (nodes_[0].done) return std::nullopt;  // every child has been proposed
    Genotype g(enc_.size(), 0);
    path_.assign(1, 0);
    size_t node = 0;
    bool in_tree = true, rolled_out = false;
    for (size_t i = 0; i < g.size(); ++i) {
      int n = enc_.decisions()[i].size();
      if (!enc_.active(g, i) || n == 1) continue;  // fixed at option 0: no branch
      if (!in_tree) {
        g[i] = shared_best(i, all_options(n), rng);
        rolled_out = true;
        continue;
      }
      Node& nd = nodes_[node];
      if (nd.children.empty()) nd.children.assign(static_cast<size_t>(n), -1);
      std::vector<int> untried;
      for (int k = 0; k < n; ++k)
        if (nd.children[static_cast<size_t>(k)] < 0) untried.push_back(k);
      int k;
      if (!untried.empty()) {
        k = shared_best(i, untried, rng);
        nodes_[node].children[static_cast<size_t>(k)] = static_cast<int>(nodes_.size());
        nodes_.push_back(Node{});
        in_tree = false;  // expanded one node: the rest is a rollout
      } else {
        k = best_child(node);
      }
      g[i] = k;
      node = static_cast<size_t>(nodes_[node].children[static_cast<size_t>(k)]);
      path_.push_back(node);
    }
    if (!rolled_out) mark_done();
    return g;
  }
  void tell(const Genotype& g, bool feasible, double score) override {
    if (feasible) {
      lo_ = seen_ ? std::min(lo_, score) : score;
      hi_ = seen_ ? std::max(hi_, score) : score;
      seen_ = true;
    }
    double r = feasible ? score : (seen_ ? lo_ : 0.0);
    for (size_t n : path_) nodes_[n].add(r);
    for (size_t i = 0; i < g.size(); ++i)
      if (enc_.active(g, i)) shared_[i][static_cast<size_t>(g[i])].add(r);
  }

 private:
  struct Stats {
    double visits = 0, total = 0;
    void add(double r) {
      visits += 1;
      total += r;
    }
    double mean() const { return total / std::max(1.0, visits); }
  };
  struct Node : Stats {
    std::vector<int> children;  // node index per option, -1: not expanded
    bool done = false;          // every child below it has been proposed: never selected again
  };
  // The path's last node is a whole child: it is done, and so is every node above it whose options
  // are all expanded and done.
  void mark_done() {
    nodes_[path_.back()].done = true;
    for (size_t j = path_.size() - 1; j-- > 0;) {
      Node& nd = nodes_[path_[j]];
      for (int c : nd.children)
        if (c < 0 || !nodes_[static_cast<size_t>(c)].done) return;
      nd.done = true;
    }
  }
  static std::vector<int> all_options(int n) {
    std::vector<int> k(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) k[static_cast<size_t>(j)] = j;
    return k;
  }
  double range() const { return hi_ > lo_ ? hi_ - lo_ : 1.0; }
  double ucb(const Stats& s, double parent_visits, double c) const {
    return s.mean() + c * range() * std::sqrt(std::log(std::max(1.0, parent_visits)) / std::max(1.0, s.visits));
  }
  // Of `options` of decision i: one never taken by any child (at random), else the best by its mean
  // reward over every child that took it.
  int shared_best(size_t i, const std::vector<int>& options, Rng& rng) const {
    const auto& st = shared_[i];
    std::vector<int> fresh;
    for (int k : options)
      if (st[static_cast<size_t>(k)].visits == 0) fresh.push_back(k);
    if (!fresh.empty()) return fresh[rng.below(fresh.size())];
    // Gibbs sampling: P(k) proportional to exp(mean_k / (mast_temperature * range)).
    double top = -1e300;
    for (int k : options) top = std::max(top, st[static_cast<size_t>(k)].mean());
    const double temperature = std::max(1e-12, o_.mast_temperature * range());
    std::vector<double> w;
    double total = 0;
    for (int k : options) total += w.emplace_back(std::exp((st[static_cast<size_t>(k)].mean() - top) / temperature));
    double u = rng.uniform() * total;
    for (size_t j = 0; j < options.size(); ++j)
      if ((u -= w[j]) <= 0) return options[j];
    return options.back();
  }
  int best_child(size_t node) const {
    const Node& nd = nodes_[node];
    int best = 0;
    double best_v = -1e300;
    for (size_t k = 0; k < nd.children.size(); ++k) {
      if (nodes_[static_cast<size_t>(nd.children[k])].done) continue;
      double v = ucb(nodes_[static_cast<size_t>(nd.children[k])], nd.visits, o_.uct_c);
      if (v > best_v) {
        best_v = v;
        best = static_cast<int>(k);
      }
    }
    return best;
  }
  const Encoding& enc_;
  StrategyOptions o_;
  std::vector<Node> nodes_;
  std::vector<std::vector<Stats>> shared_;  // per decision, per option
  std::vector<size_t> path_;
  double lo_ = 0, hi_ = 0;
  bool seen_ = false;
};

}  // namespace

int64_t bayesian_warmup(const StrategyOptions& o) {
  return o.bo_init > 0 ? o.bo_init : std::max<int64_t>(5, std::min<int64_t>(10, o.budget / 10));
}

int64_t bayesian_warmup_before_75e0437(int64_t budget) { return std::max<int64_t>(5, std::min<int64_t>(20, budget / 5)); }

void adopt_stopped_defaults(const std::string& strategy, int64_t budget, spec::json& stopped, StrategyOptions& o) {
  if (strategy == "bayesian" && !stopped.contains("init") && o.bo_init == 0) {
    o.bo_init = bayesian_warmup_before_75e0437(budget);
    stopped["init"] = o.bo_init;
  }
  if (strategy == "nsga2" && !stopped.contains("extremes")) {
    o.nsga2_extremes = false;
    stopped["extremes"] = false;
  }
}

spec::json strategy_options_json(const std::string& s, const StrategyOptions& o) {
  if (s == "evolution")
    return {{"population", o.population}, {"sample_size", o.sample_size}, {"mutation_prob", o.mutation_prob},
            {"crossover", o.crossover}};
  if (s == "coarse-to-fine") return {{"top_k", o.top_k}, {"mutation_prob", o.mutation_prob}};
  if (s == "bayesian" || s == "ehvi") return {{"mutation_prob", o.mutation_prob}, {"init", bayesian_warmup(o)}};
  if (s == "reinforce")
    return {{"lr", o.rl_lr}, {"baseline_decay", o.rl_baseline_decay}, {"entropy", o.rl_entropy}};
  if (s == "mcts") return {{"uct_c", o.uct_c}, {"mast_temperature", o.mast_temperature}};
  if (s == "hill-climbing") return {{"restarts", o.restarts}};
  if (s == "hyperband") return {{"min_epochs", o.hb_min_epochs}, {"max_epochs", o.hb_max_epochs}, {"eta", o.hb_eta}};
  if (s == "nsga2")
    return {{"population", o.nsga2_population}, {"mutation_prob", o.mutation_prob}, {"extremes", o.nsga2_extremes}};
  if (s == "tpe")
    return {{"startup", o.tpe_startup},
            {"gamma", o.tpe_gamma},
            {"candidates", o.tpe_candidates},
            {"multivariate", o.tpe_multivariate},
            {"mutation_prob", o.mutation_prob}};
  if (s == "darts")
    return {{"steps", o.darts_steps},
            {"batch_size", o.darts_batch},
            {"order", o.darts_second_order ? 2 : 1},
            {"alpha_lr", o.darts_alpha_lr},
            {"w_lr", o.darts_w_lr}};
  return spec::json::object();
}

const std::vector<std::string>& strategy_names() {
  static const std::vector<std::string> n = {"coarse-to-fine", "random",    "grid", "evolution",
                                             "hill-climbing",  "reinforce", "mcts", "tpe",
                                             "nsga2",          "bayesian",  "ehvi"};
  return n;
}

namespace {
class ListStrategy : public Strategy {
 public:
  ListStrategy(std::string name, std::vector<Genotype> children, std::string first_origin, std::string origin)
      : name_(std::move(name)), children_(std::move(children)), first_(std::move(first_origin)), rest_(std::move(origin)) {}
  std::string name() const override { return name_; }
  std::optional<Genotype> ask(Rng&) override {
    if (next_ >= children_.size()) return std::nullopt;
    origin_ = next_ == 0 ? first_ : rest_;
    return children_[next_++];
  }
  void tell(const Genotype&, bool, double) override {}
  bool ask_ahead(int64_t) const override { return true; }

 private:
  std::string name_;
  std::vector<Genotype> children_;
  std::string first_, rest_;
  size_t next_ = 0;
};
}  // namespace

std::unique_ptr<Strategy> make_list_strategy(const std::string& name, std::vector<Genotype> children,
                                             const std::string& first_origin, const std::string& origin) {
  return std::make_unique<ListStrategy>(name, std::move(children), first_origin, origin);
}

std::unique_ptr<Strategy> make_strategy(const std::string& name, const Encoding& enc, const StrategyOptions& o) {
  NAS_CHECK(name != "darts", UsageError,
            "--strategy darts: runs on a cell space's supernet (nas-search --supernet), not on genotypes alone");
  if (name == "random") return std::make_unique<RandomStrategy>(enc);
  if (name == "grid") return std::make_unique<GridStrategy>(enc);
  if (name == "coarse-to-fine") return std::make_unique<CoarseToFine>(enc, o);
  if (name == "evolution") return std::make_unique<Evolution>(enc, o);
  if (name == "hill-climbing") return std::make_unique<HillClimbing>(enc, o);
  if (name == "reinforce") return std::make_unique<Reinforce>(enc, o);
  if (name == "mcts") return std::make_unique<Mcts>(enc, o);
  if (name == "tpe") return make_tpe(enc, o);
  if (name == "nsga2") return make_nsga2(enc, o);
  std::string all;
  for (const auto& n : strategy_names()) all += (all.empty() ? "" : ", ") + n;
  throw UsageError("--strategy: expected one of " + all + ", found " + name);
}

}  // namespace nas::search
