#pragma once
// Torch-free data: IDX files (plain or gzip), image sets held as uint8, and seeded splits.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/io.h"

namespace nas::data {

// An IDX array of unsigned bytes (type 0x08): dims and row-major data, held in memory or mapped.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> owned;              // the payload, read into memory; or
  std::shared_ptr<const MappedFile> map;   // a mapping that holds it at `offset`
  size_t offset = 0;
  const uint8_t* bytes() const { return map ? map->data() + offset : owned.data(); }
  size_t size() const {
    size_t n = dims.empty() ? 0 : 1;
    for (auto d : dims) n *= static_cast<size_t>(d);
    return n;
  }
};

// Pixels that must be produced (inflated from gzip, decoded from image files) are held in memory up
// to this size; bigger ones go to a spill file (SpillFile: $TMPDIR, else /var/tmp) that is mapped,
// so that the page cache holds them, not this process.
inline constexpr size_t kSpillAboveBytes = size_t{256} << 20;

// Reads an IDX file, gzip-compressed or plain. A plain file is mapped, not read: a dataset of any
// size costs this process no memory of its own (the page cache holds what is touched). Checks the
// magic number, the element type, the number of dimensions and that the payload size matches the
// dimensions exactly. IoError naming the file and what is wrong.
IdxArray read_idx(const std::string& path);

// Images as uint8, laid out N x H x W x C, with integer labels.
struct ImageSet {
  int64_t n = 0;
  int h = 0, w = 0, c = 0;
  int num_classes = 0;
  // The pixels: owned here, or mapped (read them through image(), which knows which).
  std::vector<uint8_t> owned_pixels;          // owned pixels; or
  std::shared_ptr<const MappedFile> mapped;   // a mapped file that holds them at mapped_offset (IDX)
  size_t mapped_offset = 0;
  std::vector<int64_t> labels;
  // Tabular sets (format csv) hold standardized float features instead of pixels: n x c values,
  // h = w = 1 (a row is a 1x1 image with one channel per feature); batches take them as they are.
  std::vector<float> features;
  bool tabular() const { return !features.empty(); }
  // Regression sets (csv, task: regression): standardized float targets instead of labels, one
  // output (num_classes 1); target_mean and target_std undo the standardization.
  std::vector<float> targets;
  double target_mean = 0, target_std = 1;
  bool regression() const { return !targets.empty(); }
  const uint8_t* pixel_data() const { return mapped ? mapped->data() + mapped_offset : owned_pixels.data(); }
  const uint8_t* image(int64_t i) const { return pixel_data() + i * static_cast<int64_t>(h) * w * c; }
};

// Pairs an images IDX file (N x H x W or N x H x W x C) with a labels IDX file (N); checks that the
// counts agree. Classes = max label + 1.
ImageSet load_idx_pair(const std::string& images, const std::string& labels);

// Fashion-MNIST (or MNIST) in `dir`: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
ImageSet load_mnist_dir(const std::string& dir, bool train);

// A seeded split of [0, n): `val` held-out indices, the rest for training (at most `train_limit` of
// them when > 0). The same (n, val, seed) always gives the same split.
struct Split {
  std::vector<int64_t> train;
  std::vector<int64_t> val;
};
Split make_split(int64_t n, int64_t val, uint64_t seed, int64_t train_limit = 0);

// The first `count` indices of a seeded permutation of `from` (a fixed subset, e.g. for BN calibration).
std::vector<int64_t> seeded_subset(const std::vector<int64_t>& from, int64_t count, uint64_t seed);

// 0, 1, ..., n-1 (or the first `limit` when 0 < limit < n).
std::vector<int64_t> iota_indices(int64_t n, int64_t limit = 0);

}  // namespace nas::data
