#pragma once
// Reading YAML or JSON documents into nlohmann::json, and a validating reader that tracks the key
// path so that every error names the file, the key, what was expected and what was found.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace nas::spec {

using json = nlohmann::json;

// Parses text as JSON when it starts with '{' or '[', as YAML otherwise. `file` names the source in
// errors ("-" for stdin). Throws SpecError on a syntax error.
json parse_document(const std::string& text, const std::string& file);
// Reads a file ("-" reads stdin) and parses it. IoError when unreadable, SpecError when malformed.
json load_document(const std::string& path);

// Short rendering of a value for "found ..." in messages.
std::string describe(const json& j);

// A JSON object being validated. Every accessor records the key as known; finish() rejects the rest.
class Obj {
 public:
  Obj(const json& j, std::string file, std::string path);

  bool has(const std::string& key) const;
  // Marks an optional key as known and says whether it is present (and not null).
  bool take(const std::string& key);
  int64_t integer(const std::string& key, int64_t lo, int64_t hi);
  int64_t integer_or(const std::string& key, int64_t def, int64_t lo, int64_t hi);
  double number(const std::string& key, double lo, double hi);
  double number_or(const std::string& key, double def, double lo, double hi);
  bool boolean(const std::string& key);
  bool boolean_or(const std::string& key, bool def);
  std::string string(const std::string& key);
  std::string string_or(const std::string& key, const std::string& def);
  // Any string, the empty one included.
  std::string text_or(const std::string& key, const std::string& def);
  std::string one_of(const std::string& key, const std::vector<std::string>& allowed);
  std::string one_of_or(const std::string& key, const std::vector<std::string>& allowed, const std::string& def);
  // A non-empty list of distinct integers in [lo, hi]; a single integer is taken as a one-element list.
  std::vector<int> int_set(const std::string& key, int64_t lo, int64_t hi);
  std::vector<double> numbers(const std::string& key, double lo, double hi);
  Obj object(const std::string& key);
  // Elements of an array of objects.
  std::vector<Obj> objects(const std::string& key);
  const json& raw(const std::string& key);

  // Throws SpecError for the first key that no accessor asked for.
  void finish() const;

  // "file: path.key"
  std::string where(const std::string& key = "") const;
  [[noreturn]] void fail(const std::string& key, const std::string& expected, const json& found) const;
  const std::string& file() const { return file_; }

 private:
  const json& need(const std::string& key);
  const json* j_;
  std::string file_, path_;
  std::set<std::string> seen_;
};

// Checks `kind` and `schema_version`: kind must equal `kind`, version in [1, max_version].
int check_header(Obj& o, const std::string& kind, int max_version);

// Canonical JSON text: sorted keys (nlohmann's default), 2-space indent.
std::string canonical_dump(const json& j);
// One-line JSON text; invalid UTF-8 (a file name, say) is replaced rather than thrown on.
std::string compact_dump(const json& j);

}  // namespace nas::spec
