#include "app/app_data.h"

#include <iostream>

#include "core/error.h"
#include "core/io.h"
#include "supernet/sampling.h"
#include "data/datasets.h"
#include "train/trainer.h"

namespace nas::app {

CheckpointData load_checkpoint_data(const spec::TrainSpec& spec_in, const std::string& data_dir, int64_t calib_images,
                                    int in_channels, int num_classes) {
  spec::TrainSpec t = spec_in;
  NAS_CHECK(data_dir.empty() || t.data.format != "csv" || data_dir == t.data.path, UsageError,
            "--data " << data_dir << ": a csv model's features are standardized with its training file's statistics ("
                      << t.data.path << "); another file would be scaled differently");
  if (!data_dir.empty()) t.data.path = data_dir;
  train::TrainData td = train::load_train_data(t);  // the same split as in training
  CheckpointData d;
  d.dir = t.data.path;
  d.train = std::move(td.train_set);
  d.split = std::move(td.split);
  data::check_compatible(d.train, in_channels, num_classes, t.data.path);
  d.norm = train::normalization_of(t);
  d.calib = train::calibration_indices(t, d.split, calib_images);
  return d;
}

data::ImageSet load_test_set(const spec::DataSpec& data, const std::string& dir, int in_channels, int num_classes) {
  data::ImageSet s = data::load_dataset(data, dir, false);
  data::check_compatible(s, in_channels, num_classes, dir);
  return s;
}

spec::Arch resolve_arch(const std::string& arg, const spec::SearchSpace& space) {
  if (arg == "max") return supernet::max_arch(space);
  if (arg == "min") return supernet::min_arch(space);
  spec::Arch a = spec::load_arch(arg);
  spec::validate_arch(a, space, arg == "-" ? "<stdin>" : arg);
  return a;
}

void write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text << std::flush;
    return;
  }
  write_file_atomic(path, text);
}

}  // namespace nas::app
