#pragma once
// Tabular data from CSV files (data.format: csv): numeric feature columns and one label column
// (classification), split into training and test rows by a seeded permutation, every feature
// standardized with the training rows' mean and standard deviation. Torch-free.
#include <string>
#include <vector>

#include "data/idx.h"

namespace nas::data {

struct CsvOptions {
  std::string label;        // a header name, or "#k": the k-th column (0-based)
  bool header = true;       // the first row after skip_rows names the columns
  int64_t skip_rows = 0;
  double test_fraction = 0.2;
  uint64_t seed = 0;        // of the train/test split
  bool regression = false;  // the label is a numeric target (standardized like the features)
};

// The parsed file: features row-major (rows x columns), labels as class indices, class names in
// index order (numeric labels sorted by value, others by name). IoError naming the file and line
// for ragged rows, non-numeric cells and a missing label column.
struct CsvTable {
  std::vector<std::string> feature_names;
  std::vector<std::string> classes;
  std::vector<double> features;  // raw values (double: large magnitudes keep their precision)
  std::vector<int64_t> labels;
  std::vector<double> targets;  // regression: the label column's values
  int64_t rows = 0;
};
CsvTable read_csv(const std::string& path, const CsvOptions& o);

// The training rows (train = true) or the test rows of the file as a tabular ImageSet (h = w = 1,
// c = features), standardized with the training rows' statistics.
ImageSet load_csv(const std::string& path, const CsvOptions& o, bool train);

}  // namespace nas::data
