#include "search/encoding.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/sampling.h"

namespace nas::search {

bool Encoding::active(const Genotype&, size_t) const { return true; }

Genotype Encoding::canonical(const Genotype& g) const {
  Genotype c = g;
  for (size_t i = 0; i < c.size(); ++i)
    if (!active(g, i)) c[i] = 0;
  return c;
}

std::string Encoding::key(const Genotype& g) const { return spec::json_hash(to_json(g)); }

uint64_t Encoding::cardinality() const {
  // Exact only when every decision is active in every child; an upper bound otherwise.
  uint64_t n = 1;
  for (const auto& d : decisions_) {
    uint64_t k = static_cast<uint64_t>(std::max(1, d.size()));
    if (n > UINT64_MAX / k) return UINT64_MAX;
    n *= k;
  }
  return n;
}

Genotype Encoding::random(Rng& rng) const {
  Genotype g(decisions_.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<int>(rng.below(static_cast<uint64_t>(decisions_[i].size())));
  return canonical(g);
}

Genotype Encoding::mutate(const Genotype& g, Rng& rng, double prob) const {
  std::vector<size_t> movable;
  for (size_t i = 0; i < g.size(); ++i)
    if (decisions_[i].size() > 1 && active(g, i)) movable.push_back(i);
  if (movable.empty()) return g;
  auto step = [&](Genotype& x, size_t i) {
    int n = decisions_[i].size();
    if (!decisions_[i].ordered)
      x[i] = static_cast<int>(families::other_option(static_cast<size_t>(x[i]), static_cast<size_t>(n), rng));
    else if (x[i] == 0)
      x[i] = 1;
    else if (x[i] == n - 1)
      x[i] = n - 2;
    else
      x[i] += rng.below(2) ? 1 : -1;
  };
  Genotype out = g;
  bool moved = false;
  for (size_t i : movable) {
    if (!active(out, i)) continue;  // a depth that just shrank
    if (rng.uniform() < prob) {
      step(out, i);
      moved = true;
    }
  }
  if (!moved) step(out, movable[rng.below(movable.size())]);
  return canonical(out);
}

Genotype Encoding::crossover(const Genotype& a, const Genotype& b, Rng& rng) const {
  Genotype c(a.size());
  for (size_t i = 0; i < a.size(); ++i) c[i] = rng.below(2) ? a[i] : b[i];
  return canonical(c);
}

std::vector<Genotype> Encoding::neighbours(const Genotype& g) const {
  std::vector<Genotype> out;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!active(g, i)) continue;
    for (int v = 0; v < decisions_[i].size(); ++v) {
      if (v == g[i] || (decisions_[i].ordered && std::abs(v - g[i]) != 1)) continue;
      Genotype n = g;
      n[i] = v;
      out.push_back(canonical(n));
    }
  }
  return out;
}

void Encoding::check(const Genotype& g, const std::string& what) const {
  NAS_CHECK(g.size() == decisions_.size(), SpecError,
            what << ": expected " << decisions_.size() << " decisions, found " << g.size());
  for (size_t i = 0; i < g.size(); ++i)
    NAS_CHECK(g[i] >= 0 && g[i] < decisions_[i].size(), SpecError,
              what << ": " << decisions_[i].name << ": expected an option index in [0, " << decisions_[i].size()
                   << "), found " << g[i]);
}

// ---- supernet families ----

ArchEncoding::ArchEncoding(const spec::SearchSpace& space)
    : space_(space), family_(families::of(space).encoding(space)) {
  decisions_ = family_->decisions();
}

spec::Arch ArchEncoding::decode(const Genotype& g) const {
  check(g, "genotype");
  return family_->decode(g);
}

Genotype ArchEncoding::encode(const spec::Arch& a) const {
  families::validate_arch(a, space_, "arch");
  return family_->encode(a);
}

spec::json ArchEncoding::to_json(const Genotype& g) const { return spec::to_json(decode(g)); }

Genotype ArchEncoding::from_json(const spec::json& j, const std::string& file) const {
  return encode(families::arch_from_json(j, file));
}

std::string ArchEncoding::key(const Genotype& g) const { return spec::arch_hash(decode(g)); }

std::string ArchEncoding::space_hash() const { return spec::json_hash(spec::to_json(space_)); }

std::vector<Genotype> ArchEncoding::extremes() const {
  return {canonical(encode(families::cheapest_arch(space_))), canonical(encode(families::max_arch(space_)))};
}

// ---- generic ----

GenericEncoding::GenericEncoding(const spec::json& decisions, const std::string& file, const std::string& space_name)
    : name_(space_name) {
  NAS_CHECK(decisions.is_array() && !decisions.empty(), SpecError,
            file << ": decisions: expected a non-empty list of {name, choices}, found " << spec::describe(decisions));
  std::set<std::string> names;
  for (size_t i = 0; i < decisions.size(); ++i) {
    spec::Obj o(decisions[i], file, "decisions[" + std::to_string(i) + "]");
    std::string name = o.string("name");
    NAS_CHECK(names.insert(name).second, SpecError,
              file << ": " << o.where("name") << ": expected a unique decision name, found \"" << name
                   << "\" twice");
    const spec::json& ch = o.raw("choices");
    NAS_CHECK(ch.is_array() && !ch.empty(), SpecError,
              file << ": " << o.where("choices") << ": expected a non-empty list, found " << spec::describe(ch));
    Decision d{name, {}, name, true};
    std::set<std::string> seen;
    bool numbers = true;
    for (const auto& c : ch) {
      numbers = numbers && c.is_number();
      NAS_CHECK(c.is_number() || c.is_string() || c.is_boolean(), SpecError,
                file << ": " << o.where("choices") << ": expected numbers, strings or booleans, found "
                     << spec::describe(c));
      std::string label = c.is_string() ? c.get<std::string>() : c.dump();
      NAS_CHECK(seen.insert(label).second, SpecError,
                file << ": " << o.where("choices") << ": expected distinct options, found " << label << " twice");
      d.labels.push_back(label);
    }
    d.ordered = o.boolean_or("ordered", numbers);
    o.finish();
    decisions_.push_back(d);
    values_.push_back(ch);
  }
}

spec::json GenericEncoding::canonical_json() const {
  spec::json ds = spec::json::array();
  for (size_t i = 0; i < decisions_.size(); ++i)
    ds.push_back({{"name", decisions_[i].name}, {"choices", values_[i]}, {"ordered", decisions_[i].ordered}});
  return {{"kind", spec::kSearchSpaceKind},
          {"schema_version", spec::kSearchSpaceVersion},
          {"name", name_},
          {"family", spec::kGenericFamily},
          {"decisions", ds}};
}

spec::json GenericEncoding::to_json(const Genotype& g) const {
  check(g, "genotype");
  spec::json choices = spec::json::object();
  for (size_t i = 0; i < g.size(); ++i) choices[decisions_[i].name] = values_[i][static_cast<size_t>(g[i])];
  return {{"kind", spec::kArchKind}, {"schema_version", spec::kArchVersion}, {"space", name_}, {"choices", choices}};
}

Genotype GenericEncoding::from_json(const spec::json& j, const std::string& file) const {
  spec::Obj o(j, file, "");
  spec::check_header(o, spec::kArchKind, spec::kArchVersion);
  std::string space = o.string("space");
  NAS_CHECK(space == name_, SpecError, file << ": space: expected \"" << name_ << "\", found \"" << space << "\"");
  spec::Obj c = o.object("choices");
  Genotype g(decisions_.size());
  for (size_t i = 0; i < g.size(); ++i) {
    const spec::json& v = c.raw(decisions_[i].name);
    auto it = std::find(values_[i].begin(), values_[i].end(), v);
    if (it == values_[i].end()) {
      std::string allowed;
      for (const auto& l : decisions_[i].labels) allowed += (allowed.empty() ? "" : ", ") + l;
      c.fail(decisions_[i].name, "one of " + allowed, v);
    }
    g[i] = static_cast<int>(it - values_[i].begin());
  }
  c.finish();
  o.finish();
  return g;
}

std::unique_ptr<GenericEncoding> generic_space_from_json(const spec::json& j, const std::string& file) {
  spec::Obj o(j, file, "");
  spec::check_header(o, spec::kSearchSpaceKind, spec::kSearchSpaceVersion);
  std::string name = o.string("name");
  o.one_of("family", {spec::kGenericFamily});
  auto enc = std::make_unique<GenericEncoding>(o.raw("decisions"), file, name);
  o.finish();
  return enc;
}

std::string space_family(const spec::json& j) {
  if (j.is_object() && j.contains("family") && j["family"].is_string()) return j["family"].get<std::string>();
  return spec::kDefaultFamily;
}

}  // namespace nas::search
