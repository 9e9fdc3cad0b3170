// The families, and what every family shares.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "families/cell/cell.h"
#include "families/family.h"
#include "families/mbconv/mbconv.h"
#include "families/mlp/mlp.h"
#include "families/resnet/resnet.h"

namespace nas::families {

const std::vector<const Family*>& all() {
  static const std::vector<const Family*> families = {&mbconv::family(), &mlp::family(), &cell::family(),
                                                             &resnet::family()};
  return families;
}

const Family& of(const spec::SearchSpace& s) {
  for (const Family* f : all())
    if (f->name() == s.family) return *f;
  throw Error("search space \"" + s.name + "\": no family is named \"" + s.family + "\"");
}

const Family& of(const spec::Arch& a) {
  for (const Family* f : all())
    if (f->holds(a)) return *f;
  throw Error("an arch of space \"" + a.space + "\": holds the choices of no family");
}

void throw_other_family(const std::string& what, const std::string& expected, const std::string& found) {
  throw Error(what + ": expected family " + expected + "'s part, found " +
              (found.empty() ? std::string("none") : "family " + found + "'s"));
}

std::vector<int> sorted_set(spec::Obj& o, const std::string& key, int lo, int hi) {
  std::vector<int> v = o.int_set(key, lo, hi);
  std::sort(v.begin(), v.end());
  return v;
}

void FamilyEncoding::add_sizes(const std::string& name, const std::vector<int>& sizes, const std::string& group) {
  std::vector<int> sorted = sizes;
  std::sort(sorted.begin(), sorted.end());
  decisions_.push_back({name, labels_of(sorted), group, true});
  values_.push_back(sorted);
}

void FamilyEncoding::add_names(const std::string& name, const std::vector<std::string>& names,
                               const std::string& group) {
  decisions_.push_back({name, names, group, false});
  std::vector<int> index(names.size());
  for (size_t k = 0; k < index.size(); ++k) index[k] = static_cast<int>(k);
  values_.push_back(index);
}

int FamilyEncoding::option_of(size_t i, int v) const { return index_of(values_[i], v); }

void Family::cheapest(const spec::SearchSpace& s, spec::Arch& a) const { at_levels(s, Levels{0, 0, 0, 0, 0}, a); }

void validate_arch(const spec::Arch& a, const spec::SearchSpace& s, const std::string& file) {
  NAS_CHECK(a.space == s.name, SpecError,
            file << ": space: expected \"" << s.name << "\" (the supernet's search space), found \"" << a.space
                 << "\"");
  const Family& f = of(s);
  NAS_CHECK(f.holds(a), SpecError,
            file << ": " << f.choices_key() << ": expected " << f.choices_description() << ", found "
                 << (a.choices ? "the choices of family " + a.family() : std::string("none")));
  check_choice(file, "resolution", a.resolution, s.resolution);
  f.validate(a, s, file);
}

Cost arch_cost(const spec::SearchSpace& s, const spec::Arch& a, int in_channels, int num_classes) {
  return of(s).cost(s, a, in_channels, num_classes);
}

std::string arch_summary(const spec::Arch& a) { return "r" + std::to_string(a.resolution) + " " + of(a).summary(a); }

std::string name_set_expected(const std::vector<std::string>& allowed, const std::string& noun,
                              const std::string& note) {
  std::string expected = "a non-empty list of distinct " + noun + " from [";
  for (size_t i = 0; i < allowed.size(); ++i) expected += (i ? ", " : "") + allowed[i];
  return expected + "]" + note;
}

std::vector<std::string> name_set(spec::Obj& o, const std::string& key, const std::vector<std::string>& allowed,
                                  const std::string& noun, const std::string& note, bool one_alone) {
  const spec::json given = o.raw(key);
  const spec::json v = one_alone && given.is_string() ? spec::json::array({given}) : given;
  const std::string expected = name_set_expected(allowed, noun, note);
  if (!v.is_array() || v.empty()) o.fail(key, expected, given);
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) o.fail(key, expected, given);
    std::string name = e.get<std::string>();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end() ||
        std::find(out.begin(), out.end(), name) != out.end())
      o.fail(key, expected, given);
    out.push_back(name);
  }
  return out;
}

int at_level(const std::vector<int>& set, double level) {
  size_t i = static_cast<size_t>(std::lround(level * static_cast<double>(set.size() - 1)));
  return set[std::min(i, set.size() - 1)];
}

int neighbour(const std::vector<int>& set, int v, Rng& rng) {
  if (set.size() < 2) return v;
  auto it = std::find(set.begin(), set.end(), v);
  size_t i = it == set.end() ? 0 : static_cast<size_t>(it - set.begin());
  if (i == 0) return set[1];
  if (i == set.size() - 1) return set[i - 1];
  return rng.below(2) ? set[i + 1] : set[i - 1];
}

size_t other_option(size_t current, size_t n, Rng& rng) { return (current + 1 + rng.below(n - 1)) % n; }

int index_of(const std::vector<int>& v, int x) {
  auto it = std::find(v.begin(), v.end(), x);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

void check_choice(const std::string& file, const std::string& path, int v, const std::vector<int>& set) {
  if (std::find(set.begin(), set.end(), v) != set.end()) return;
  std::ostringstream exp;
  exp << "one of [";
  for (size_t i = 0; i < set.size(); ++i) exp << (i ? ", " : "") << set[i];
  exp << "]";
  throw SpecError(file + ": " + path + ": expected " + exp.str() + " (outside the search space), found " +
                  std::to_string(v));
}

void check_name(const std::string& file, const std::string& path, const std::string& v,
                const std::vector<std::string>& set) {
  if (std::find(set.begin(), set.end(), v) != set.end()) return;
  std::string exp;
  for (size_t k = 0; k < set.size(); ++k) exp += (k ? ", " : "") + set[k];
  throw SpecError(file + ": " + path + ": expected one of [" + exp + "] (outside the search space), found \"" + v +
                  "\"");
}

std::vector<std::string> labels_of(const std::vector<int>& v) {
  std::vector<std::string> l;
  for (int x : v) l.push_back(std::to_string(x));
  return l;
}

}  // namespace nas::families
