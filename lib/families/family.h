#pragma once
// One interface for every supernet family (mbconv, mlp, cell): what a family knows about its own
// documents and children, so that reading, sampling, cost, the search encoding and the tools ask
// the family instead of branching on its name. Each family lives in lib/families/<name>/;
// registry.cpp lists them. Torch-free: the family's modules are its torch side
// (families/modules.h).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "spec/arch.h"
#include "spec/search_space.h"

namespace nas::families {

// Analytic cost of a child: multiply-adds of convolutions and linear layers (as usually counted:
// no BN, activations or pooling) and parameter counts (BN affine parameters included, running
// statistics not). Agrees with the modules in nn/ by construction and by test.
struct Cost {
  int64_t macs = 0;
  int64_t params = 0;
  // Activation values alive at the worst point of a batch-1 inference of families::ChildNet, layer by
  // layer: the network's input, the current block's input, and a layer's input and output.
  int64_t peak_activations = 0;
  double mflops() const { return static_cast<double>(macs) / 1e6; }
  // Weights plus peak activations at batch 1, fp32, in MiB (what inference needs at least).
  double memory_mib() const { return static_cast<double>(params + peak_activations) * 4.0 / (1024.0 * 1024.0); }
};

// Global settings for the coarse grid: each entry in [0, 1] picks the choice at that fraction of
// every set of its dimension (0 = smallest, 1 = largest). Cell spaces use `width` for every edge's
// place in its cost ranking of ops.
struct Levels {
  double resolution = 1, depth = 1, width = 1, expand = 1, kernel = 1;
};

// One decision of a search space: a named categorical choice with a list of options.
struct Decision {
  std::string name;                 // e.g. "stage2.block0.kernel"
  std::vector<std::string> labels;  // the options, in order (ordered sets: smallest first)
  std::string group;                // decisions of one group move together on coarse grids
  // Ordered options (sizes) mutate to a neighbour and take levels on coarse grids; unordered ones
  // (an mlp layer's activation) mutate to any other option and hold their first on coarse grids.
  bool ordered = true;
  int size() const { return static_cast<int>(labels.size()); }
};
// A child as one option index per decision.
using Genotype = std::vector<int>;

// A family's children as genotypes, for one space.
class FamilyEncoding {
 public:
  virtual ~FamilyEncoding() = default;
  const std::vector<Decision>& decisions() const { return decisions_; }
  // Whether decision i matters for g (a block beyond its stage's depth does not). Depends only on
  // the decisions before i.
  virtual bool active(const Genotype& g, size_t i) const = 0;
  // g has one valid option index per decision.
  virtual spec::Arch decode(const Genotype& g) const = 0;
  // a is a member of the space (validate_arch). Decisions that depend on a depth get option 0 when
  // inactive; a cell's edges keep their ops (inactive only when the network lacks that kind of cell).
  virtual Genotype encode(const spec::Arch& a) const = 0;

 protected:
  // Adds an ordered decision over the sizes of a sorted set: option k's value is sizes[k].
  void add_sizes(const std::string& name, const std::vector<int>& sizes, const std::string& group);
  // Adds an unordered decision over named options: option k's value is k.
  void add_names(const std::string& name, const std::vector<std::string>& names, const std::string& group);
  // The value of decision i's option in g.
  int value(const Genotype& g, size_t i) const { return values_[i][static_cast<size_t>(g[i])]; }
  // The option of decision i whose value is v (-1 when none is).
  int option_of(size_t i, int v) const;

  std::vector<Decision> decisions_;
  std::vector<std::vector<int>> values_;  // each decision's option values
};

class LatencyOps;

// Picks an index in [0, n) of n choices that are sorted smallest first (by value, or by cost rank).
using Pick = std::function<size_t(size_t n)>;

class Family {
 public:
  virtual ~Family() = default;
  // As the space file's `family` names it.
  virtual std::string name() const = 0;
  // Whether `a` holds this family's choices.
  bool holds(const spec::Arch& a) const { return a.family() == name(); }

  // Reads the family's keys of a space document into s (all but kind, schema_version, name and
  // family; the resolution included, whose limits are the family's) and finishes o.
  virtual void read_space(spec::Obj& o, spec::SearchSpace& s) const = 0;
  // Whether an arch document holds this family's choices (arch documents do not name their
  // family): the family reads it when it has the family's keys.
  virtual bool claims(const spec::json& arch_document) const = 0;
  // Reads the family's keys of an arch document (all but kind, schema_version, space and
  // resolution) and finishes o.
  virtual std::shared_ptr<const spec::ArchChoices> read_arch(spec::Obj& o) const = 0;
  // Throws SpecError (naming `file` and the key path) when `a` (of this family, whose space name
  // and resolution are already checked) is not a child of `s`.
  virtual void validate(const spec::Arch& a, const spec::SearchSpace& s, const std::string& file) const = 0;
  // The choices after "r<resolution> " in arch_summary.
  virtual std::string summary(const spec::Arch& a) const = 0;
  // For the error on an arch of another family: the key that holds the family's choices in an arch
  // document, and what it expects there.
  virtual std::string choices_key() const = 0;
  virtual std::string choices_description() const = 0;

  // The child at coarse-grid levels (space name and resolution are set by the caller).
  virtual void at_levels(const spec::SearchSpace& s, const Levels& l, spec::Arch& a) const = 0;
  // The child of least cost; the smallest child unless the family has a cheaper one.
  virtual void cheapest(const spec::SearchSpace& s, spec::Arch& a) const;
  // A child whose ordered decisions each take the choice pick(n) of their n sorted choices. With
  // `by_cost`, choices without an order of their own (cell ops) are ranked by cost and picked
  // likewise; otherwise cell ops are picked from the space's list (uniform draws pass a uniform
  // pick). mlp activations are always drawn uniformly with `rng`.
  virtual void draw(const spec::SearchSpace& s, Rng& rng, const Pick& pick, bool by_cost, spec::Arch& a) const = 0;
  // Each decision changes with probability `prob` to a neighbouring choice (ordered) or any other
  // one (unordered); false when no decision of the family can change.
  virtual bool mutate(const spec::SearchSpace& s, Rng& rng, double prob, spec::Arch& a) const = 0;

  virtual Cost cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) const = 0;
  virtual std::unique_ptr<FamilyEncoding> encoding(const spec::SearchSpace& s) const = 0;

  // What the family's children can do beyond the interface above, each false or null by default:
  // its latency-table operators (families/latency_ops.h), null when its children are measured whole;
  virtual const LatencyOps* latency_ops() const { return nullptr; }
  // whether a child runs at resolutions other than its space's (a convolutional net with global
  // pooling), as the low-fidelity estimator's --lf-resolution trains it;
  virtual bool runs_at_any_resolution() const { return false; }
  // whether its supernet has DARTS's continuous relaxation (SupernetModules::forward_mixed).
  virtual bool has_relaxation() const { return false; }
};

// Throws SpecError (naming `file` and the key path) when the arch is not a member of `space`.
void validate_arch(const spec::Arch& a, const spec::SearchSpace& space, const std::string& file);
// One-line human summary, e.g. "r28 s16 [w24 e6k5,e4k3] ... h192" or "r28 [512 relu, 256 gelu]".
std::string arch_summary(const spec::Arch& a);

// The analytic cost of child `a` of space `s` on inputs of `in_channels` channels, with
// `num_classes` outputs.
Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes);

// Every family, in the registry's order.
const std::vector<const Family*>& all();
// The family of a space; Error for a name no family has.
const Family& of(const spec::SearchSpace& s);
// The family whose choices `a` holds.
const Family& of(const spec::Arch& a);

// Error: `what` is of family `found` (empty: holds no family's part), not `expected`.
[[noreturn]] void throw_other_family(const std::string& what, const std::string& expected, const std::string& found);
// The family's part of a space or an arch, as its own type T (a Space or Choices of
// families/<name>/<name>.h); Error when it is another family's or missing.
template <typename T>
const T& part_of(const spec::SearchSpace& s) {
  const auto* p = dynamic_cast<const T*>(s.choices.get());
  if (!p) throw_other_family("search space \"" + s.name + "\"", T::kFamily, s.choices ? s.family : "");
  return *p;
}
template <typename T>
const T& part_of(const spec::Arch& a) {
  const auto* p = dynamic_cast<const T*>(a.choices.get());
  if (!p) throw_other_family("an arch of space \"" + a.space + "\"", T::kFamily, a.family());
  return *p;
}
// A copy of a's choices that a now holds, to change in place (a's copies keep the old ones).
template <typename T>
T& edit(spec::Arch& a) {
  auto copy = std::make_shared<T>(part_of<T>(a));
  a.choices = copy;
  return *copy;
}
// The same for a space's part.
template <typename T>
T& edit(spec::SearchSpace& s) {
  auto copy = std::make_shared<T>(part_of<T>(s));
  s.choices = copy;
  return *copy;
}

// Limits every family's reader applies: absurd sizes are refused before anything is allocated.
constexpr int kMaxWidth = 4096;
constexpr int kMaxDepth = 32;
constexpr int kMaxStages = 16;
constexpr int kMaxResolution = 1024;
// A sorted, non-empty set of distinct integers in [lo, hi] (o.int_set, sorted).
std::vector<int> sorted_set(spec::Obj& o, const std::string& key, int lo, int hi);
// A non-empty list of distinct names from `allowed`, in its order of writing; `noun` names them in
// the error ("activations"), `note` adds to what is expected. With `one_alone`, a lone name is a
// one-element list.
std::vector<std::string> name_set(spec::Obj& o, const std::string& key, const std::vector<std::string>& allowed,
                                  const std::string& noun, const std::string& note, bool one_alone);
// What name_set's error says it expected.
std::string name_set_expected(const std::vector<std::string>& allowed, const std::string& noun,
                              const std::string& note);

// Helpers the families share.
int at_level(const std::vector<int>& set, double level);
// One step up or down the (sorted) set from v; stays when the set has one element.
int neighbour(const std::vector<int>& set, int v, Rng& rng);
// One of the n >= 2 unordered options other than `current` (< n), uniformly: one draw of rng.
size_t other_option(size_t current, size_t n, Rng& rng);
// Index of x in v, -1 when absent.
int index_of(const std::vector<int>& v, int x);
// Throws SpecError naming `file` and `path` when v is not in `set`.
void check_choice(const std::string& file, const std::string& path, int v, const std::vector<int>& set);
// Likewise for a named choice (an activation, an op).
void check_name(const std::string& file, const std::string& path, const std::string& v,
                const std::vector<std::string>& set);
// Decision labels of a sorted set of sizes.
std::vector<std::string> labels_of(const std::vector<int>& v);

}  // namespace nas::families
