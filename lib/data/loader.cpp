#include "data/loader.h"

#include "core/error.h"
#include "core/hash.h"
#include "core/rng.h"

namespace nas::data {

Batch make_batch(const ImageSet& set, const std::vector<int64_t>& idx, const LoaderOptions& o, uint64_t aug_seed,
                 int64_t first_row) {
  const int64_t B = static_cast<int64_t>(idx.size());
  const int H = set.h, W = set.w, C = set.c;
  torch::Tensor x = torch::empty({B, C, H, W}, torch::kFloat32);
  torch::Tensor y = torch::empty({B}, torch::kInt64);
  float* xp = x.data_ptr<float>();
  int64_t* yp = y.data_ptr<int64_t>();
  std::vector<float> scale(C), shift(C);
  for (int c = 0; c < C; ++c) {
    double m = o.norm.mean.size() == 1 ? o.norm.mean[0] : o.norm.mean.at(c);
    double s = o.norm.std.size() == 1 ? o.norm.std[0] : o.norm.std.at(c);
    scale[c] = static_cast<float>(1.0 / (255.0 * s));
    shift[c] = static_cast<float>(-m / s);
  }
  if (set.tabular()) {  // already standardized; no augmentation
    if (set.regression()) y = torch::empty({B}, torch::kFloat32);
    for (int64_t b = 0; b < B; ++b) {
      if (set.regression())
        y.data_ptr<float>()[b] = set.targets[idx[b]];
      else
        yp[b] = set.labels[idx[b]];
      std::copy_n(set.features.data() + idx[b] * C, C, xp + b * C);
    }
    return Batch{x, y, 0};
  }
  Rng rng(aug_seed);
  const int p = o.crop_padding;
  // One row's augmentation draws: the rows before a shard draw them too, so that each image is
  // augmented as in the whole batch.
  int dy = 0, dx = 0;
  bool flip = false;
  auto draw = [&] {
    if (p > 0) {
      dy = static_cast<int>(rng.below(2 * p + 1)) - p;
      dx = static_cast<int>(rng.below(2 * p + 1)) - p;
    }
    if (o.hflip) flip = rng.below(2) == 1;
  };
  for (int64_t r = 0; r < first_row; ++r) draw();
  for (int64_t b = 0; b < B; ++b) {
    const uint8_t* img = set.image(idx[b]);
    yp[b] = set.labels[idx[b]];
    draw();
    for (int c = 0; c < C; ++c) {
      float* out = xp + ((b * C + c) * H) * W;
      for (int i = 0; i < H; ++i) {
        int si = i + dy;
        for (int j = 0; j < W; ++j) {
          int sj = (flip ? W - 1 - j : j) + dx;
          // Zero padding in pixel space (black), then normalization.
          uint8_t v = (si >= 0 && si < H && sj >= 0 && sj < W) ? img[(si * W + sj) * C + c] : 0;
          out[i * W + j] = v * scale[c] + shift[c];
        }
      }
    }
  }
  return Batch{x, y, 0};
}

int64_t BatchLoader::batches_for(int64_t n, int batch, bool drop_last) {
  return drop_last ? n / batch : (n + batch - 1) / batch;
}

BatchLoader::BatchLoader(const ImageSet& set, std::vector<int64_t> indices, LoaderOptions opts)
    : set_(set), order_(std::move(indices)), o_(std::move(opts)) {
  NAS_CHECK(o_.batch_size > 0, UsageError, "batch size must be positive");
  NAS_CHECK(o_.shards >= 1 && o_.shard >= 0 && o_.shard < o_.shards, UsageError,
            "loader shard " << o_.shard << " of " << o_.shards << ": expected 0 <= shard < shards");
  if (o_.shuffle) {
    Rng rng(mix_seed(o_.seed, static_cast<uint64_t>(o_.epoch), 0x0bde7));
    rng.shuffle(order_);
  }
  num_batches_ = batches_for(static_cast<int64_t>(order_.size()), o_.batch_size, o_.drop_last);
  next_ = std::min(o_.start_batch, num_batches_);
  if (o_.prefetch > 0 && next_ < num_batches_) thread_ = std::thread([this] { worker(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Batch BatchLoader::produce(int64_t b) const {
  int64_t begin = b * o_.batch_size;
  int64_t end = std::min<int64_t>(begin + o_.batch_size, static_cast<int64_t>(order_.size()));
  const int64_t rows = end - begin;
  const int64_t lo = rows * o_.shard / o_.shards, hi = rows * (o_.shard + 1) / o_.shards;
  std::vector<int64_t> idx(order_.begin() + begin + lo, order_.begin() + begin + hi);
  Batch batch = make_batch(set_, idx, o_, mix_seed(o_.seed, static_cast<uint64_t>(o_.epoch), static_cast<uint64_t>(b) + 1),
                           lo);
  batch.index = b;
  if (o_.pin_memory) {  // prepared off the training thread, so the host-to-GPU copy can overlap
    batch.x = batch.x.pin_memory();
    batch.y = batch.y.pin_memory();
  }
  return batch;
}

void BatchLoader::worker() {
  try {
    for (int64_t b = next_; b < num_batches_; ++b) {
      Batch batch = produce(b);
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || static_cast<int>(queue_.size()) < o_.prefetch; });
      if (stop_) return;
      queue_.push_back(std::move(batch));
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> l(mu_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> l(mu_);
  done_ = true;
  cv_.notify_all();
}

std::optional<Batch> BatchLoader::next() {
  if (next_ >= num_batches_) return std::nullopt;
  if (o_.prefetch <= 0) return produce(next_++);
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return !queue_.empty() || done_; });
  if (error_) std::rethrow_exception(error_);
  if (queue_.empty()) return std::nullopt;
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  ++next_;
  cv_.notify_all();
  return b;
}

void check_compatible(const ImageSet& set, int in_channels, int num_classes, const std::string& what) {
  NAS_CHECK(set.c == in_channels, SpecError,
            what << ": images have " << set.c << " channels, expected " << in_channels << " (the model's input)");
  NAS_CHECK(set.regression() == (num_classes == 1), SpecError,
            what << ": expected " << (num_classes == 1 ? "a regression target (the model has 1 output)" : "class labels")
                 << ", found " << (set.regression() ? "a regression target" : "class labels"));
  NAS_CHECK(set.num_classes <= num_classes, SpecError,
            what << ": labels go up to " << set.num_classes - 1 << ", expected at most " << num_classes - 1
                 << " (the model has " << num_classes << " classes)");
}

}  // namespace nas::data
