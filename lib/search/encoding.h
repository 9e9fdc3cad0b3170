#pragma once
// One encoding for every strategy: a space exposes its decisions, each a named categorical choice
// with an ordered list of options, and a child is a genotype (one option index per decision).
// Strategies only ever see genotypes, so each works on every space family. Torch-free.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "families/family.h"
#include "spec/arch.h"
#include "spec/document.h"
#include "spec/search_space.h"

namespace nas::search {

using families::Decision;
using families::Genotype;

class Encoding {
 public:
  virtual ~Encoding() = default;
  const std::vector<Decision>& decisions() const { return decisions_; }
  size_t size() const { return decisions_.size(); }
  // Whether decision i matters for g (a block beyond its stage's depth does not). Depends only on
  // the decisions before i, so strategies that decide in order (MCTS) can skip inactive ones.
  virtual bool active(const Genotype& g, size_t i) const;
  // g with every inactive decision at option 0: equal children get equal genotypes.
  Genotype canonical(const Genotype& g) const;
  // The child as JSON (a nas.arch document for supernet spaces, {decision: option} for generic ones).
  virtual spec::json to_json(const Genotype& g) const = 0;
  // Stable 16-hex-digit key of the child (the arch hash for supernet spaces; the hash of the compact
  // JSON of to_json(g) otherwise).
  virtual std::string key(const Genotype& g) const;
  // The genotype of a child written by to_json (e.g. read back from a nas.search file); SpecError,
  // naming `file`, when it is not a child of this space.
  virtual Genotype from_json(const spec::json& j, const std::string& file) const = 0;
  // The space's family (a families::Family's name, or spec::kGenericFamily) and name, as nas.search
  // files record them.
  virtual std::string family() const = 0;
  virtual std::string space_name() const = 0;
  // The json_hash of the space's canonical form (a generic space's records each decision's
  // `ordered`): nas.search records it, and --resume refuses a space that changed since.
  virtual std::string space_hash() const = 0;
  // Number of distinct children (saturates at UINT64_MAX).
  uint64_t cardinality() const;
  // The children at the ends of the space's costs, where the space knows them before scoring: the
  // cheapest and the largest child of a supernet space; none for a generic space.
  virtual std::vector<Genotype> extremes() const { return {}; }

  Genotype random(Rng& rng) const;
  // Each active decision moves with probability `prob` to a neighbouring option (one step up or
  // down its ordered list; any other option when unordered); at least one active decision moves
  // when any has two options.
  Genotype mutate(const Genotype& g, Rng& rng, double prob) const;
  // Uniform crossover: each decision from either parent.
  Genotype crossover(const Genotype& a, const Genotype& b, Rng& rng) const;
  // All genotypes that differ from g in one active decision by one step (unordered: by any change).
  std::vector<Genotype> neighbours(const Genotype& g) const;
  // Checks size and ranges; throws SpecError naming `what`.
  void check(const Genotype& g, const std::string& what) const;

 protected:
  std::vector<Decision> decisions_;
};

// The children of a family's space (mbconv, mlp, cell, resnet), as its family encodes them
// (families::FamilyEncoding: e.g. mbconv's resolution, stem and head width, and per stage depth,
// width and, for each block slot up to the largest depth, expand ratio and kernel size).
class ArchEncoding : public Encoding {
 public:
  explicit ArchEncoding(const spec::SearchSpace& space);
  bool active(const Genotype& g, size_t i) const override { return family_->active(g, i); }
  spec::json to_json(const Genotype& g) const override;
  std::string key(const Genotype& g) const override;
  Genotype from_json(const spec::json& j, const std::string& file) const override;
  std::string family() const override { return space_.family; }
  std::string space_name() const override { return space_.name; }
  std::string space_hash() const override;
  std::vector<Genotype> extremes() const override;
  spec::Arch decode(const Genotype& g) const;
  Genotype encode(const spec::Arch& a) const;  // throws SpecError when a is outside the space
  const spec::SearchSpace& space() const { return space_; }

 private:
  spec::SearchSpace space_;
  std::shared_ptr<const families::FamilyEncoding> family_;
};

// The generic family: decisions listed by name in the space file, for users who score children
// with their own program (see nas-search --evaluator).
//   kind: nas.search_space, family: generic, name: ...,
//   decisions: [{name: lr, choices: [0.1, 0.01]}, {name: act, choices: [relu, gelu], ordered: false}]
// A decision is ordered (its options lie on one axis, in the order listed: mutations move to a
// neighbour, the GP embeds the position) or unordered (categories: mutations jump to any other
// option, the GP embeds them one-hot, TPE gives them categorical kernels). `ordered` defaults to
// true when every option is a number, and to false when any is a string or a boolean.
class GenericEncoding : public Encoding {
 public:
  GenericEncoding(const spec::json& decisions, const std::string& file, const std::string& space_name);
  spec::json to_json(const Genotype& g) const override;
  Genotype from_json(const spec::json& j, const std::string& file) const override;
  std::string family() const override { return spec::kGenericFamily; }
  std::string space_name() const override { return name_; }
  std::string space_hash() const override { return spec::json_hash(canonical_json()); }
  // The space as a nas.search_space document with every default written out (each decision's
  // `ordered` included).
  spec::json canonical_json() const;

 private:
  std::string name_;
  std::vector<spec::json> values_;  // each decision's options as JSON values
};

// A nas.search_space document of family generic (kind, schema_version, name, family, decisions).
std::unique_ptr<GenericEncoding> generic_space_from_json(const spec::json& j, const std::string& file);
// The family a nas.search_space document declares ("mbconv" when it declares none), without
// checking the rest: tools pick the reader with it.
std::string space_family(const spec::json& j);

}  // namespace nas::search
