#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"

namespace nas::data {
namespace {

// Refuse absurd headers before allocating (2^33 bytes is far above any dataset we read whole).
constexpr int64_t kMaxIdxBytes = int64_t{1} << 33;

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const char* what) {
  size_t done = 0;
  auto* p = static_cast<uint8_t*>(dst);
  while (done < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    int got = gzread(f, p + done, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw IoError(path + ": corrupted or truncated " + what + " (" + (msg ? msg : "read error") + ")");
    }
    if (got == 0) {
      throw IoError(path + ": truncated " + what + ": expected " + std::to_string(n) + " bytes, found " +
                    std::to_string(done));
    }
    done += static_cast<size_t>(got);
  }
}

// An upper bound of the bytes the file can hold, from the file itself: its size, or for gzip its
// trailer's uncompressed size (ISIZE, modulo 4 GiB).
size_t payload_size_hint(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return 0;
  unsigned char head[2] = {0, 0}, tail[4] = {0, 0, 0, 0};
  size_t hint = 0;
  if (std::fread(head, 1, 2, f) == 2 && std::fseek(f, 0, SEEK_END) == 0) {
    const long size = std::ftell(f);
    hint = size > 0 ? static_cast<size_t>(size) : 0;
    if (head[0] == 0x1f && head[1] == 0x8b && size >= 4 && std::fseek(f, -4, SEEK_END) == 0 && std::fread(tail, 1, 4, f) == 4)
      // ISIZE can lie: at most deflate's largest ratio (1032:1) of the compressed size.
      hint = std::min(size_t{tail[0]} | (size_t{tail[1]} << 8) | (size_t{tail[2]} << 16) | (size_t{tail[3]} << 24),
                      1032 * hint);
  }
  std::fclose(f);
  return hint;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  check_readable_file(path);
  GzFile g;
  g.f = gzopen(path.c_str(), "rb");
  NAS_CHECK(g.f != nullptr, IoError, path << ": cannot open: " << std::strerror(errno));
  gzbuffer(g.f, 1 << 17);
  uint8_t magic[4];
  read_exact(g.f, magic, 4, path, "IDX header");
  NAS_CHECK(magic[0] == 0 && magic[1] == 0, IoError,
            path << ": not an IDX file: expected magic bytes 00 00, found " << int(magic[0]) << " " << int(magic[1]));
  NAS_CHECK(magic[2] == 0x08, IoError,
            path << ": unsupported IDX element type 0x" << std::hex << int(magic[2])
                 << ": expected 0x08 (unsigned byte)");
  int ndim = magic[3];
  NAS_CHECK(ndim >= 1 && ndim <= 4, IoError, path << ": IDX header: expected 1 to 4 dimensions, found " << ndim);
  IdxArray a;
  int64_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    uint8_t b[4];
    read_exact(g.f, b, 4, path, "IDX header");
    int64_t d = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | int64_t(b[3]);
    NAS_CHECK(d > 0, IoError, path << ": IDX header: dimension " << i << " is 0");
    a.dims.push_back(d);
    NAS_CHECK(d <= kMaxIdxBytes / total, IoError, path << ": IDX header: dimensions describe more than 8 GiB");
    total *= d;
  }
  // Grown as the bytes arrive, not allocated from the header's claim: a corrupt header cannot make
  // the reader allocate gigabytes for a small file (found by scripts/fuzz.sh).
  const size_t want = static_cast<size_t>(total);
  a.data.reserve(std::min(want, payload_size_hint(path)));  // one allocation for honest files
  for (size_t have = 0; have < want;) {
    const size_t chunk = std::min<size_t>(want - have, size_t{4} << 20);
    if (a.data.size() < have + chunk) a.data.resize(have + chunk);
    const int got = gzread(g.f, a.data.data() + have, static_cast<unsigned>(chunk));
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(g.f, &err);
      throw IoError(path + ": corrupted or truncated IDX payload (" + (msg ? msg : "read error") + ")");
    }
    NAS_CHECK(got > 0, IoError, path << ": truncated IDX payload: expected " << want << " bytes, found " << have);
    have += static_cast<size_t>(got);
  }
  uint8_t extra;
  int more = gzread(g.f, &extra, 1);
  NAS_CHECK(more == 0, IoError,
            path << ": IDX payload: expected exactly " << total << " bytes for the header's dimensions, found more");
  return a;
}

ImageSet load_idx_pair(const std::string& images, const std::string& labels) {
  IdxArray im = read_idx(images);
  IdxArray lb = read_idx(labels);
  NAS_CHECK(im.dims.size() == 3 || im.dims.size() == 4, IoError,
            images << ": expected images of 3 (N,H,W) or 4 (N,H,W,C) dimensions, found " << im.dims.size());
  NAS_CHECK(lb.dims.size() == 1, IoError, labels << ": expected labels of 1 dimension, found " << lb.dims.size());
  NAS_CHECK(lb.dims[0] == im.dims[0], IoError,
            labels << ": expected " << im.dims[0] << " labels (one per image in " << images << "), found "
                   << lb.dims[0]);
  ImageSet s;
  s.n = im.dims[0];
  s.h = static_cast<int>(im.dims[1]);
  s.w = static_cast<int>(im.dims[2]);
  s.c = im.dims.size() == 4 ? static_cast<int>(im.dims[3]) : 1;
  s.pixels = std::move(im.data);
  s.labels.assign(lb.data.begin(), lb.data.end());
  int maxl = 0;
  for (auto l : s.labels) maxl = std::max<int>(maxl, static_cast<int>(l));
  s.num_classes = maxl + 1;
  return s;
}

ImageSet load_mnist_dir(const std::string& dir, bool train) {
  const std::string pre = dir + "/" + (train ? "train" : "t10k");
  auto pick = [](const std::string& base) {
    if (is_regular_file(base + ".gz")) return base + ".gz";
    if (is_regular_file(base)) return base;
    throw IoError(base + ".gz: cannot open: no such file (nor " + base + ")");
  };
  std::string images = pick(pre + "-images-idx3-ubyte");
  std::string labels = pick(pre + "-labels-idx1-ubyte");
  return load_idx_pair(images, labels);
}

std::vector<int64_t> iota_indices(int64_t n, int64_t limit) {
  int64_t m = (limit > 0 && limit < n) ? limit : n;
  std::vector<int64_t> v(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) v[i] = i;
  return v;
}

Split make_split(int64_t n, int64_t val, uint64_t seed, int64_t train_limit) {
  NAS_CHECK(val >= 0 && val < n, SpecError,
            "data.validation_images: expected fewer than the " << n << " training images, found " << val);
  std::vector<int64_t> perm = iota_indices(n);
  Rng rng(seed ^ 0x5eed5a1177ULL);
  rng.shuffle(perm);
  Split s;
  s.val.assign(perm.begin(), perm.begin() + val);
  int64_t rest = n - val;
  if (train_limit > 0 && train_limit < rest) rest = train_limit;
  s.train.assign(perm.begin() + val, perm.begin() + val + rest);
  return s;
}

std::vector<int64_t> seeded_subset(const std::vector<int64_t>& from, int64_t count, uint64_t seed) {
  std::vector<int64_t> v = from;
  Rng rng(seed ^ 0xca11bULL);
  rng.shuffle(v);
  if (count > 0 && count < static_cast<int64_t>(v.size())) v.resize(static_cast<size_t>(count));
  return v;
}

}  // namespace nas::data
