#include "spec/document.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <limits>

#include "core/error.h"
#include "core/io.h"

namespace nas::spec {
namespace {

// YAML 1.2 core schema resolution of a plain scalar.
json yaml_scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf")
    return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -std::numeric_limits<double>::infinity();
  {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (end && *end == '\0' && errno == 0) return static_cast<int64_t>(v);
  }
  bool numeric_chars = s.find_first_not_of("0123456789+-.eE") == std::string::npos;
  if (numeric_chars) {
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == '\0') return d;
  }
  return s;
}

json yaml_to_json(const YAML::Node& n, const std::string& file) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return yaml_scalar(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e, file));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar())
          throw SpecError(file + ": line " + std::to_string(kv.first.Mark().line + 1) +
                          ": expected a scalar mapping key");
        const std::string key = kv.first.Scalar();
        if (o.contains(key))
          throw SpecError(file + ": " + key + ": duplicate key (line " +
                          std::to_string(kv.first.Mark().line + 1) + ")");
        o[key] = yaml_to_json(kv.second, file);
      }
      return o;
    }
  }
  return nullptr;
}

bool is_int(const json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

}  // namespace

namespace {
json parse_yaml(const std::string& text, const std::string& file) {
  try {
    YAML::Node root = YAML::Load(text);
    return yaml_to_json(root, file);
  } catch (const YAML::Exception& e) {
    throw SpecError(file + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

// JSON, with duplicate keys refused as they are in YAML (nlohmann would keep the last one).
json parse_json(const std::string& text, const std::string& file) {
  std::vector<std::set<std::string>> keys;
  std::string dup;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    else if (ev == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    else if (ev == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
             dup.empty())
      dup = parsed.get<std::string>();
    return true;
  };
  json j = json::parse(text, cb);
  if (!dup.empty()) throw SpecError(file + ": " + dup + ": duplicate key");
  return j;
}
}  // namespace

json parse_document(const std::string& text, const std::string& file) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw SpecError(file + ": empty document");
  if (text[first] == '{' || text[first] == '[') {
    try {
      return parse_json(text, file);
    } catch (const json::parse_error& e) {
      // YAML flow style ({kind: nas.arch, ...}) also starts with a brace; a .json file stays JSON.
      bool json_file = file.size() >= 5 && file.compare(file.size() - 5, 5, ".json") == 0;
      if (!json_file) {
        try {
          return parse_yaml(text, file);
        } catch (const SpecError&) {
        }
      }
      std::string what = e.what();
      auto pos = what.find("parse error");
      throw SpecError(file + ": invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos)));
    } catch (const json::out_of_range& e) {
      // A number too large for a double (found by scripts/fuzz.sh): nlohmann throws out_of_range.
      std::string what = e.what();
      auto pos = what.find("number overflow");
      throw SpecError(file + ": invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos)));
    }
  }
  return parse_yaml(text, file);
}

json load_document(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    text = read_file(path);
  }
  return parse_document(text, path == "-" ? "<stdin>" : path);
}

std::string describe(const json& j) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    double d = j.get<double>();
    return std::isnan(d) ? "NaN" : (d > 0 ? "inf" : "-inf");
  }
  std::string s = compact_dump(j);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  const char* type = j.is_object() ? "object " : j.is_array() ? "list " : j.is_string() ? "string " : "";
  return std::string(type) + s;
}

Obj::Obj(const json& j, std::string file, std::string path)
    : j_(&j), file_(std::move(file)), path_(std::move(path)) {
  if (!j.is_object()) {
    throw SpecError(file_ + ": " + (path_.empty() ? "<document>" : path_) +
                    ": expected a mapping, found " + describe(j));
  }
}

std::string Obj::where(const std::string& key) const {
  std::string p = path_;
  if (!key.empty()) p = p.empty() ? key : p + "." + key;
  return file_ + ": " + (p.empty() ? "<document>" : p);
}

void Obj::fail(const std::string& key, const std::string& expected, const json& found) const {
  throw SpecError(where(key) + ": expected " + expected + ", found " + describe(found));
}

bool Obj::has(const std::string& key) const { return j_->contains(key) && !(*j_)[key].is_null(); }

bool Obj::take(const std::string& key) {
  seen_.insert(key);
  return has(key);
}

const json& Obj::need(const std::string& key) {
  seen_.insert(key);
  if (!j_->contains(key)) throw SpecError(where(key) + ": required key is missing");
  return (*j_)[key];
}

int64_t Obj::integer(const std::string& key, int64_t lo, int64_t hi) {
  const json& v = need(key);
  std::string exp = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!is_int(v)) fail(key, exp, v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) fail(key, exp, v);
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) fail(key, exp, v);
  return x;
}
int64_t Obj::integer_or(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  seen_.insert(key);
  return has(key) ? integer(key, lo, hi) : def;
}

double Obj::number(const std::string& key, double lo, double hi) {
  const json& v = need(key);
  char buf[128];
  std::snprintf(buf, sizeof buf, "a finite number in [%g, %g]", lo, hi);
  if (!v.is_number()) fail(key, buf, v);
  double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) fail(key, buf, v);
  return x;
}
double Obj::number_or(const std::string& key, double def, double lo, double hi) {
  seen_.insert(key);
  return has(key) ? number(key, lo, hi) : def;
}

bool Obj::boolean(const std::string& key) {
  const json& v = need(key);
  if (!v.is_boolean()) fail(key, "true or false", v);
  return v.get<bool>();
}
bool Obj::boolean_or(const std::string& key, bool def) {
  seen_.insert(key);
  return has(key) ? boolean(key) : def;
}

std::string Obj::string(const std::string& key) {
  const json& v = need(key);
  if (!v.is_string() || v.get<std::string>().empty()) fail(key, "a non-empty string", v);
  try {
    (void)v.dump();  // strict: throws on invalid UTF-8
  } catch (const json::exception&) {
    fail(key, "valid UTF-8 text", v);
  }
  return v.get<std::string>();
}
std::string Obj::string_or(const std::string& key, const std::string& def) {
  seen_.insert(key);
  return has(key) ? string(key) : def;
}

std::string Obj::text_or(const std::string& key, const std::string& def) {
  seen_.insert(key);
  if (!has(key)) return def;
  const json& v = (*j_)[key];
  if (!v.is_string()) fail(key, "a string", v);
  return v.get<std::string>();
}

std::string Obj::one_of(const std::string& key, const std::vector<std::string>& allowed) {
  const json& v = need(key);
  std::string exp = "one of";
  for (size_t i = 0; i < allowed.size(); ++i) exp += (i ? ", " : " ") + allowed[i];
  if (!v.is_string()) fail(key, exp, v);
  for (const auto& a : allowed)
    if (a == v.get<std::string>()) return a;
  fail(key, exp, v);
}
std::string Obj::one_of_or(const std::string& key, const std::vector<std::string>& allowed,
                           const std::string& def) {
  seen_.insert(key);
  return has(key) ? one_of(key, allowed) : def;
}

std::vector<int> Obj::int_set(const std::string& key, int64_t lo, int64_t hi) {
  const json& v = need(key);
  std::string exp = "a non-empty list of distinct integers in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]";
  std::vector<int> out;
  if (is_int(v)) {
    int64_t x = v.get<int64_t>();
    if (x < lo || x > hi || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)))
      fail(key, exp, v);
    out.push_back(static_cast<int>(x));
    return out;
  }
  if (!v.is_array() || v.empty()) fail(key, exp, v);
  for (const auto& e : v) {
    if (!is_int(e)) fail(key, exp, v);
    if (e.is_number_unsigned() && e.get<uint64_t>() > static_cast<uint64_t>(hi)) fail(key, exp, v);
    int64_t x = e.get<int64_t>();
    if (x < lo || x > hi) fail(key, exp, v);
    for (int o : out)
      if (o == x) fail(key, exp, v);
    out.push_back(static_cast<int>(x));
  }
  return out;
}

std::vector<double> Obj::numbers(const std::string& key, double lo, double hi) {
  const json& v = need(key);
  char buf[128];
  std::snprintf(buf, sizeof buf, "a non-empty list of finite numbers in [%g, %g]", lo, hi);
  if (!v.is_array() || v.empty()) fail(key, buf, v);
  std::vector<double> out;
  for (const auto& e : v) {
    if (!e.is_number()) fail(key, buf, v);
    double x = e.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) fail(key, buf, v);
    out.push_back(x);
  }
  return out;
}

Obj Obj::object(const std::string& key) {
  const json& v = need(key);
  std::string p = path_.empty() ? key : path_ + "." + key;
  return Obj(v, file_, p);
}

std::vector<Obj> Obj::objects(const std::string& key) {
  const json& v = need(key);
  if (!v.is_array()) fail(key, "a list of mappings", v);
  std::vector<Obj> out;
  std::string p = path_.empty() ? key : path_ + "." + key;
  for (size_t i = 0; i < v.size(); ++i) out.emplace_back(v[i], file_, p + "[" + std::to_string(i) + "]");
  return out;
}

const json& Obj::raw(const std::string& key) { return need(key); }

void Obj::finish() const {
  for (auto it = j_->begin(); it != j_->end(); ++it) {
    if (!seen_.count(it.key())) throw SpecError(where(it.key()) + ": unknown key");
  }
}

int check_header(Obj& o, const std::string& kind, int max_version) {
  const json& k = o.raw("kind");
  if (!k.is_string()) o.fail("kind", kind, k);
  if (k.get<std::string>() != kind) o.fail("kind", kind, k);
  const json& v = o.raw("schema_version");
  if (!is_int(v) || v.get<int64_t>() < 1) o.fail("schema_version", "a positive integer", v);
  if (v.get<int64_t>() > max_version)
    throw SpecError(o.where("schema_version") + ": version " + std::to_string(v.get<int64_t>()) +
                    " is newer than this build supports (" + std::to_string(max_version) + ")");
  return static_cast<int>(v.get<int64_t>());
}

std::string canonical_dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }
std::string compact_dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace nas::spec
