#include "data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"

namespace nas::data {
namespace {

// Refuse absurd headers (2^40 bytes is far above any dataset we read).
constexpr int64_t kMaxIdxBytes = int64_t{1} << 40;

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

// Up to n bytes from a gzip (or plain) stream: fewer only at its end; IoError when it is corrupt.
size_t gz_read(gzFile f, uint8_t* dst, size_t n, const std::string& path, const char* what) {
  size_t done = 0;
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    const int got = gzread(f, dst + done, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw IoError(path + ": corrupted or truncated " + what + " (" + (msg ? msg : "read error") + ")");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

// The header (magic, dims) through read(dst, n), which returns the bytes it got (fewer at the end).
template <class Read>
std::vector<int64_t> read_header(Read&& read, const std::string& path) {
  auto exact = [&](uint8_t* dst, size_t n) {
    const size_t got = read(dst, n);
    NAS_CHECK(got == n, IoError,
              path << ": truncated IDX header: expected " << n << " bytes, found " << got);
  };
  uint8_t magic[4];
  exact(magic, 4);
  NAS_CHECK(magic[0] == 0 && magic[1] == 0, IoError,
            path << ": not an IDX file: expected magic bytes 00 00, found " << int(magic[0]) << " " << int(magic[1]));
  NAS_CHECK(magic[2] == 0x08, IoError,
            path << ": unsupported IDX element type 0x" << std::hex << int(magic[2])
                 << ": expected 0x08 (unsigned byte)");
  const int ndim = magic[3];
  NAS_CHECK(ndim >= 1 && ndim <= 4, IoError, path << ": IDX header: expected 1 to 4 dimensions, found " << ndim);
  std::vector<int64_t> dims;
  int64_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    uint8_t b[4];
    exact(b, 4);
    const int64_t d = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | int64_t(b[3]);
    NAS_CHECK(d > 0, IoError, path << ": IDX header: dimension " << i << " is 0");
    NAS_CHECK(d <= kMaxIdxBytes / total, IoError, path << ": IDX header: dimensions describe more than 1 TiB");
    dims.push_back(d);
    total *= d;
  }
  return dims;
}

size_t payload_bytes(const std::vector<int64_t>& dims) {
  int64_t total = 1;
  for (auto d : dims) total *= d;
  return static_cast<size_t>(total);
}

std::string size_mismatch(const std::string& path, size_t want, size_t have, bool more) {
  std::ostringstream m;
  if (more)
    m << path << ": IDX payload: expected exactly " << want << " bytes for the header's dimensions, found more";
  else
    m << path << ": truncated IDX payload: expected " << want << " bytes, found " << have;
  return m.str();
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

bool is_gzip(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char head[2] = {0, 0};
  const bool gz = std::fread(head, 1, 2, f) == 2 && head[0] == 0x1f && head[1] == 0x8b;
  std::fclose(f);
  return gz;
}

// A plain IDX file, mapped: its payload stays in the page cache, never copied.
IdxArray map_idx(const std::string& path) {
  IdxArray a;
  a.map = MappedFile::open(path);
  size_t pos = 0;
  a.dims = read_header(
      [&](uint8_t* dst, size_t n) {
        const size_t got = std::min(n, a.map->size() - pos);
        std::memcpy(dst, a.map->data() + pos, got);
        pos += got;
        return got;
      },
      path);
  a.offset = pos;
  const size_t want = payload_bytes(a.dims), have = a.map->size() - pos;
  NAS_CHECK(have == want, IoError, size_mismatch(path, want, have, have > want));
  return a;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  check_readable_file(path);
  struct stat st {};
  NAS_CHECK(::stat(path.c_str(), &st) != 0 || st.st_size > 0, IoError,
            path << ": truncated IDX header: expected 4 bytes, found 0 (an empty file)");
  if (!is_gzip(path)) return map_idx(path);
  GzFile g;
  g.f = gzopen(path.c_str(), "rb");
  NAS_CHECK(g.f != nullptr, IoError, path << ": cannot open: " << std::strerror(errno));
  gzbuffer(g.f, 1 << 17);
  IdxArray a;
  a.dims = read_header([&](uint8_t* dst, size_t n) { return gz_read(g.f, dst, n, path, "IDX header"); }, path);
  const size_t want = payload_bytes(a.dims);
  // Inflated in chunks, as the bytes arrive (never allocated from the header's claim: a corrupt
  // header cannot make the reader allocate gigabytes for a small file, found by scripts/fuzz.sh):
  // into memory up to kSpillAboveBytes; a bigger payload goes to a spill file that is then mapped,
  // so that the page cache holds it, not this process. The spill file is made once 16 MiB have
  // really arrived: a short file that claims more fails as truncated, whatever $TMPDIR is.
  const bool big = want > kSpillAboveBytes;
  constexpr size_t kChunk = size_t{4} << 20, kSpillAfter = size_t{16} << 20;
  std::unique_ptr<SpillFile> file;
  std::vector<uint8_t> chunk_buf;
  a.owned.reserve(std::min({want, payload_size_hint(path), big ? kSpillAfter : want}));  // one allocation
  for (size_t have = 0; have < want;) {
    const size_t chunk = std::min(want - have, kChunk);
    if (big && !file && have + chunk > kSpillAfter) {
      file = std::make_unique<SpillFile>(path);
      file->append(a.owned.data(), have);
      std::vector<uint8_t>().swap(a.owned);
      chunk_buf.resize(kChunk);
    }
    uint8_t* dst = chunk_buf.data();
    if (!file) {
      if (a.owned.size() < have + chunk) a.owned.resize(have + chunk);
      dst = a.owned.data() + have;
    }
    const size_t got = gz_read(g.f, dst, chunk, path, "IDX payload");
    if (file) file->append(dst, got);
    have += got;
    NAS_CHECK(got == chunk, IoError, size_mismatch(path, want, have, false));
  }
  uint8_t extra;
  NAS_CHECK(gz_read(g.f, &extra, 1, path, "IDX payload") == 0, IoError, size_mismatch(path, want, want, true));
  if (file) a.map = file->map();
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
  int64_t image_bytes = 1;
  for (size_t i = 1; i < im.dims.size(); ++i) image_bytes *= im.dims[i];  // at most 2^40 (read_idx)
  NAS_CHECK(image_bytes <= INT32_MAX && im.dims[1] <= 65536 && im.dims[2] <= 65536, IoError,
            images << ": IDX header: expected images of at most 65536 x 65536 and 2^31 bytes, found "
                   << im.dims[1] << " x " << im.dims[2] << " (" << image_bytes << " bytes)");
  ImageSet s;
  s.n = im.dims[0];
  s.h = static_cast<int>(im.dims[1]);
  s.w = static_cast<int>(im.dims[2]);
  s.c = im.dims.size() == 4 ? static_cast<int>(im.dims[3]) : 1;
  s.owned_pixels = std::move(im.owned);
  s.mapped = std::move(im.map);
  s.mapped_offset = im.offset;
  s.labels.assign(lb.bytes(), lb.bytes() + lb.size());
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
