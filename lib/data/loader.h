#pragma once
// Batches as tensors: normalization, augmentation (random crop with padding, horizontal flip),
// seeded epoch order, and a background thread that prepares batches off the training thread.
#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/idx.h"

namespace nas::data {

struct Normalization {
  std::vector<double> mean{0.0};
  std::vector<double> std{1.0};
};

struct LoaderOptions {
  int batch_size = 128;
  bool shuffle = false;      // seeded by (seed, epoch)
  bool drop_last = false;
  int crop_padding = 0;      // 0: no random crop
  bool hflip = false;
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t start_batch = 0;   // skip this many batches (resume within an epoch)
  int prefetch = 4;          // batches prepared ahead; 0 prepares on the calling thread
  bool pin_memory = false;   // page-locked batches, for asynchronous copies to a GPU
  Normalization norm;
  // Data parallel: this process's share of each batch, rows [B*shard/shards, B*(shard+1)/shards)
  // of the batch a single process would get, augmented exactly as there.
  int shard = 0;
  int shards = 1;
};

struct Batch {
  torch::Tensor x;  // float [B, C, H, W], normalized
  torch::Tensor y;  // int64 [B] class indices; float [B] standardized targets for regression sets
  int64_t index = 0;
};

// Builds one batch from the given image indices (deterministic for a given seed).
// `first_row`: idx are rows first_row.. of a larger batch (a shard): the augmentation draws of the
// rows before it are skipped, so each image is augmented as in the whole batch.
Batch make_batch(const ImageSet& set, const std::vector<int64_t>& idx, const LoaderOptions& o, uint64_t aug_seed,
                 int64_t first_row = 0);

class BatchLoader {
 public:
  BatchLoader(const ImageSet& set, std::vector<int64_t> indices, LoaderOptions opts);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The next batch, or nullopt at the end of the epoch.
  std::optional<Batch> next();
  int64_t num_batches() const { return num_batches_; }
  static int64_t batches_for(int64_t n, int batch, bool drop_last);

 private:
  Batch produce(int64_t b) const;
  void worker();

  const ImageSet& set_;
  std::vector<int64_t> order_;
  LoaderOptions o_;
  int64_t num_batches_;
  int64_t next_ = 0;  // next batch the consumer gets
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool stop_ = false;
  bool done_ = false;
  std::exception_ptr error_;
};

// Checks that a dataset fits a model (channels, classes) and names what is off.
void check_compatible(const ImageSet& set, int in_channels, int num_classes, const std::string& what);

}  // namespace nas::data
