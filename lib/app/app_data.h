#pragma once
// Data a tool needs around a checkpoint: the training images split exactly as in training, the
// normalization, and the fixed, seeded BN-calibration subset. Internal to lib/app.
#include <string>
#include <vector>

#include "data/idx.h"
#include "data/loader.h"
#include "spec/arch.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"

namespace nas::app {

struct CheckpointData {
  data::ImageSet train;
  data::Split split;
  data::Normalization norm;
  std::vector<int64_t> calib;
  std::string dir;
};

// data_dir overrides the spec's data.path when non-empty; calib_images < 0 takes the spec's.
// image_size > 0: the images must have that size (the model's training images; another size would
// be resized to the arch's resolution from a different field of view).
CheckpointData load_checkpoint_data(const spec::TrainSpec& t, const std::string& data_dir, int64_t calib_images,
                                    int in_channels, int num_classes, int image_size = 0);

// The test images of the same dataset (any data.format; data_dir, when not empty, replaces
// data.path, as in load_checkpoint_data; for final reporting only).
data::ImageSet load_test_set(const spec::DataSpec& data, const std::string& data_dir, int in_channels, int num_classes,
                             int image_size = 0);

// The arch named by --arch: "max" or "min" (the space's largest or smallest child), a nas.arch
// file, or a nas.search file (its best); checked against the space.
spec::Arch resolve_arch(const std::string& arg, const spec::SearchSpace& space);

// Writes `text` to `path` atomically, or to stdout when path is "-".
void write_output(const std::string& path, const std::string& text);

}  // namespace nas::app
