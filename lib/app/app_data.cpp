#include "app/app_data.h"

#include <iostream>

#include "core/error.h"
#include "core/io.h"
#include "data/datasets.h"
#include "families/documents.h"
#include "families/sampling.h"
#include "train/trainer.h"

namespace nas::app {

namespace {
// The data section with --data (when given) as its path.
spec::DataSpec with_data_dir(spec::DataSpec d, const std::string& data_dir) {
  if (data_dir.empty()) return d;
  NAS_CHECK(d.format != "csv" || data_dir == d.path, UsageError,
            "--data " << data_dir << ": a csv model's features are standardized with its training file's statistics ("
                      << d.path << "); another file would be scaled differently");
  d.path = data_dir;
  return d;
}
}  // namespace

namespace {
void check_image_size(const data::ImageSet& s, int image_size, const std::string& what) {
  // Checkpoints record the training images' height (their width may differ: inputs are resized).
  NAS_CHECK(image_size <= 0 || s.tabular() || s.h == image_size, SpecError,
            what << ": images are " << s.h << "x" << s.w << ", expected " << image_size << "x" << image_size
                 << " (the size the model was trained on)");
}
}  // namespace

CheckpointData load_checkpoint_data(const spec::TrainSpec& spec_in, const std::string& data_dir, int64_t calib_images,
                                    int in_channels, int num_classes, int image_size) {
  spec::TrainSpec t = spec_in;
  t.data = with_data_dir(t.data, data_dir);
  train::TrainData td = train::load_train_data(t);  // the same split as in training
  CheckpointData d;
  d.dir = t.data.path;
  d.train = std::move(td.train_set);
  d.split = std::move(td.split);
  data::check_compatible(d.train, in_channels, num_classes, t.data.path);
  check_image_size(d.train, image_size, t.data.path);
  d.norm = train::normalization_of(t);
  d.calib = train::calibration_indices(t, d.split, calib_images);
  return d;
}

data::ImageSet load_test_set(const spec::DataSpec& data_in, const std::string& data_dir, int in_channels,
                             int num_classes, int image_size) {
  const spec::DataSpec data = with_data_dir(data_in, data_dir);
  data::ImageSet s = data::load_dataset(data, data.path, false);
  data::check_compatible(s, in_channels, num_classes, data.path);
  check_image_size(s, image_size, data.path);
  return s;
}

spec::Arch resolve_arch(const std::string& arg, const spec::SearchSpace& space) {
  if (arg == "max") return families::max_arch(space);
  if (arg == "min") return families::min_arch(space);
  spec::Arch a = families::load_arch(arg);
  families::validate_arch(a, space, arg == "-" ? "<stdin>" : arg);
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
