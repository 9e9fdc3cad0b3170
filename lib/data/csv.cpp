#include "data/csv.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace nas::data {
namespace {
// Fields of one line (RFC 4180): commas separate, a double-quoted field may hold commas and ""
// for a quote; spaces around unquoted fields and a trailing CR are dropped.
std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::string f;
  bool quoted = false, was_quoted = false;
  auto finish = [&] {
    if (!was_quoted) {
      size_t a = f.find_first_not_of(" \t\r"), b = f.find_last_not_of(" \t\r");
      f = a == std::string::npos ? "" : f.substr(a, b - a + 1);
    }
    out.push_back(f);
    f.clear();
    was_quoted = false;
  };
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        f.push_back('"');
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        f.push_back(ch);
      }
    } else if (ch == '"' && f.find_first_not_of(" \t") == std::string::npos) {
      quoted = was_quoted = true;
      f.clear();
    } else if (ch == ',') {
      finish();
    } else if (!(ch == '\r' && i + 1 == line.size()) && !(was_quoted && (ch == ' ' || ch == '\t'))) {
      f.push_back(ch);
    }
  }
  finish();
  return out;
}

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  v = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size() && std::isfinite(v);
}
}  // namespace

namespace {
// data.label: a column name from the header, or #k (a 0-based column index).
size_t label_column(const std::string& path, const CsvOptions& o, const std::vector<std::string>& names) {
  if (!o.label.empty() && o.label[0] == '#') {
    double k = 0;
    NAS_CHECK(parse_number(o.label.substr(1), k) && k >= 0 && k == std::floor(k), SpecError,
              path << ": data.label: expected a column name or #k (a 0-based column index), found \"" << o.label << "\"");
    return static_cast<size_t>(k);
  }
  auto it = std::find(names.begin(), names.end(), o.label);
  std::string cols;
  for (size_t i = 0; i < names.size(); ++i) cols += (i ? ", " : "") + names[i];
  NAS_CHECK(o.header && it != names.end(), SpecError,
            path << ": data.label: expected a column named \"" << o.label << "\""
                 << (o.header ? " among [" + cols + "]" : " (the file has no header: name it #k)") << ", found none");
  return static_cast<size_t>(it - names.begin());
}

// Skips a UTF-8 byte-order mark and o.skip_rows lines; reads the header into `names` when o.header.
void read_preamble(std::ifstream& in, const std::string& path, const CsvOptions& o, int64_t& lineno,
                   std::vector<std::string>& names) {
  if (in.peek() == 0xEF) {  // a UTF-8 byte-order mark
    char bom[3];
    in.read(bom, 3);
    if (!(bom[1] == '\xBB' && bom[2] == '\xBF')) in.seekg(0);
  }
  std::string line;
  for (int64_t i = 0; i < o.skip_rows && std::getline(in, line); ++i) ++lineno;
  if (!o.header) return;
  NAS_CHECK(std::getline(in, line), IoError, path << ": expected a header row, found the end of the file");
  ++lineno;
  names = fields(line);
}

// The label column's name in messages.
std::string label_name(const CsvOptions& o, const std::vector<std::string>& names, size_t label_col) {
  return names.empty() ? o.label : names[label_col];
}

// Classes: numeric labels by value, others by name. A label's class is its rank among the distinct
// values (numbers: 1 and 1.0 are one class, named by its first spelling in the file).
void assign_classes(CsvTable& t, const std::vector<std::string>& raw_labels) {
  bool numeric = true;
  for (const auto& l : raw_labels) {
    double v = 0;
    numeric = numeric && parse_number(l, v);
  }
  auto ranks = [&](auto keys) {
    auto distinct = keys;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    t.classes.assign(distinct.size(), "");
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto k = std::lower_bound(distinct.begin(), distinct.end(), keys[i]) - distinct.begin();
      t.labels.push_back(k);
      if (t.classes[static_cast<size_t>(k)].empty()) t.classes[static_cast<size_t>(k)] = raw_labels[i];
    }
  };
  if (numeric) {
    std::vector<double> values;
    for (const auto& l : raw_labels) values.push_back(std::strtod(l.c_str(), nullptr));
    ranks(values);
  } else {
    ranks(raw_labels);
  }
}
}  // namespace

CsvTable read_csv(const std::string& path, const CsvOptions& o) {
  std::ifstream in(path);
  NAS_CHECK(in.good(), IoError, path << ": cannot open");
  int64_t lineno = 0;
  std::vector<std::string> names;
  read_preamble(in, path, o, lineno, names);
  size_t ncols = names.size();
  const size_t label_col = label_column(path, o, names);
  CsvTable t;
  std::vector<std::string> raw_labels;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    auto f = fields(line);
    if (ncols == 0) ncols = f.size();
    NAS_CHECK(f.size() == ncols, IoError,
              path << ":" << lineno << ": expected " << ncols << " fields like the " << (o.header ? "header" : "first row")
                   << ", found " << f.size());
    NAS_CHECK(label_col < ncols, SpecError,
              path << ": data.label: expected a column index below " << ncols << ", found " << o.label);
    for (size_t c = 0; c < ncols; ++c) {
      if (c == label_col) {
        raw_labels.push_back(f[c]);
        continue;
      }
      double v = 0;
      NAS_CHECK(parse_number(f[c], v), IoError,
                path << ":" << lineno << ": column " << (names.empty() ? "#" + std::to_string(c) : names[c])
                     << ": expected a number, found \"" << f[c] << "\"");
      t.features.push_back(v);
    }
    ++t.rows;
  }
  NAS_CHECK(t.rows >= 2, IoError, path << ": expected at least 2 data rows, found " << t.rows);
  NAS_CHECK(ncols >= 2, IoError, path << ": expected a label and at least one feature column, found " << ncols << " column(s)");
  for (size_t c = 0; c < ncols; ++c)
    if (c != label_col) t.feature_names.push_back(names.empty() ? "#" + std::to_string(c) : names[c]);
  if (o.regression) {
    for (const auto& raw : raw_labels) {
      double v = 0;
      NAS_CHECK(parse_number(raw, v), IoError,
                path << ": column " << label_name(o, names, label_col)
                     << ": expected a numeric target (task: regression), found \"" << raw << "\"");
      t.targets.push_back(v);
    }
    return t;
  }
  assign_classes(t, raw_labels);
  NAS_CHECK(t.classes.size() >= 2, IoError,
            path << ": column " << label_name(o, names, label_col) << ": expected at least 2 classes, found "
                 << t.classes.size());
  return t;
}

ImageSet load_csv(const std::string& path, const CsvOptions& o, bool train) {
  CsvTable t = read_csv(path, o);
  const int64_t c = static_cast<int64_t>(t.feature_names.size());
  // The split: a seeded permutation, its first test_fraction of rows for testing.
  std::vector<int64_t> perm = iota_indices(t.rows);
  Rng rng(o.seed ^ 0x7e57c5fULL);
  rng.shuffle(perm);
  const int64_t n_test = static_cast<int64_t>(std::llround(o.test_fraction * static_cast<double>(t.rows)));
  NAS_CHECK(n_test < t.rows, SpecError, path << ": data.test_fraction: leaves no training rows");
  std::vector<int64_t> test(perm.begin(), perm.begin() + n_test), rows(perm.begin() + n_test, perm.end());
  std::sort(test.begin(), test.end());
  std::sort(rows.begin(), rows.end());
  // Statistics of the training rows (validation rows, carved from them later, included).
  std::vector<double> mean(static_cast<size_t>(c), 0.0), sd(static_cast<size_t>(c), 0.0);
  for (int64_t r : rows)
    for (int64_t j = 0; j < c; ++j) mean[static_cast<size_t>(j)] += t.features[static_cast<size_t>(r * c + j)];
  for (auto& m : mean) m /= static_cast<double>(rows.size());
  for (int64_t r : rows)
    for (int64_t j = 0; j < c; ++j) {
      double d = t.features[static_cast<size_t>(r * c + j)] - mean[static_cast<size_t>(j)];
      sd[static_cast<size_t>(j)] += d * d;
    }
  for (auto& s : sd) s = std::sqrt(s / static_cast<double>(rows.size()));
  const auto& pick = train ? rows : test;
  NAS_CHECK(!pick.empty(), SpecError, path << ": data.test_fraction: " << o.test_fraction << " leaves no test rows");
  ImageSet s;
  s.n = static_cast<int64_t>(pick.size());
  s.h = s.w = 1;
  s.c = static_cast<int>(c);
  s.num_classes = o.regression ? 1 : static_cast<int>(t.classes.size());
  if (o.regression) {  // the target standardized with the training rows' statistics too
    double m = 0, v = 0;
    for (int64_t r : rows) m += t.targets[static_cast<size_t>(r)];
    m /= static_cast<double>(rows.size());
    for (int64_t r : rows) v += (t.targets[static_cast<size_t>(r)] - m) * (t.targets[static_cast<size_t>(r)] - m);
    const double sdv = std::sqrt(v / static_cast<double>(rows.size()));
    s.target_mean = m;
    s.target_std = sdv > 0 ? sdv : 1.0;
    for (int64_t r : pick) s.targets.push_back(static_cast<float>((t.targets[static_cast<size_t>(r)] - m) / s.target_std));
  }
  s.features.reserve(static_cast<size_t>(s.n * c));
  for (int64_t r : pick) {
    for (int64_t j = 0; j < c; ++j) {
      const double v = t.features[static_cast<size_t>(r * c + j)] - mean[static_cast<size_t>(j)];  // in double
      const double d = sd[static_cast<size_t>(j)];
      s.features.push_back(static_cast<float>(d > 0 ? v / d : 0.0));  // a constant column becomes 0
    }
    s.labels.push_back(o.regression ? 0 : t.labels[static_cast<size_t>(r)]);
  }
  return s;
}

}  // namespace nas::data
