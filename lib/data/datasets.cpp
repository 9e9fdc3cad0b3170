#include "data/datasets.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/io.h"
#include "data/csv.h"

#ifdef NAS_HAVE_STB
#include <stb/stb_image.h>
#endif

namespace nas::data {
namespace {
constexpr int kCifarSide = 32, kCifarChannels = 3;
constexpr int64_t kCifarPixels = int64_t{kCifarSide} * kCifarSide * kCifarChannels;

[[maybe_unused]] bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Entries of a directory, sorted; IoError naming it when it cannot be read.
[[maybe_unused]] std::vector<std::string> list_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  NAS_CHECK(d != nullptr, IoError, dir << ": cannot open: expected a directory");
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}
}  // namespace

void read_cifar_file(const std::string& path, int label_bytes, ImageSet& set) {
  check_readable_file(path);
  struct stat st {};
  const size_t size = ::stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  const int64_t record = label_bytes + kCifarPixels;
  NAS_CHECK(size > 0 && static_cast<int64_t>(size) % record == 0, IoError,
            path << ": expected CIFAR records of " << record << " bytes (" << label_bytes << " label byte"
                 << (label_bytes > 1 ? "s" : "") << " + 3x32x32 pixels), found " << size
                 << " bytes, not a multiple (truncated, or CIFAR-" << (label_bytes == 1 ? "100" : "10") << "?)");
  // Mapped, not read: the records are converted straight from the page cache, one copy in all.
  const auto file = MappedFile::open(path);
  NAS_CHECK(file->size() == size, IoError, path << ": changed while being read");
  const uint8_t* bytes = file->data();
  const int64_t n = static_cast<int64_t>(size) / record;
  set.h = set.w = kCifarSide;
  set.c = kCifarChannels;
  set.num_classes = label_bytes == 1 ? 10 : 100;
  const size_t base = set.owned_pixels.size();
  set.owned_pixels.resize(base + static_cast<size_t>(n * kCifarPixels));
  const int64_t plane = int64_t{kCifarSide} * kCifarSide;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* r = bytes + i * record;
    const int label = r[label_bytes - 1];
    NAS_CHECK(label < set.num_classes, IoError,
              path << ": record " << i << ": expected a label below " << set.num_classes << ", found " << label);
    set.labels.push_back(label);
    // Channel planes (R, G, B) to interleaved H x W x C.
    uint8_t* out = set.owned_pixels.data() + base + static_cast<size_t>(i * kCifarPixels);
    for (int64_t p = 0; p < plane; ++p)
      for (int ch = 0; ch < kCifarChannels; ++ch) out[p * kCifarChannels + ch] = r[label_bytes + ch * plane + p];
  }
  set.n += n;
}

ImageSet load_cifar_dir(const std::string& dir, bool train) {
  ImageSet s;
  if (is_regular_file(dir + "/train.bin") || is_regular_file(dir + "/test.bin")) {  // CIFAR-100
    read_cifar_file(dir + (train ? "/train.bin" : "/test.bin"), 2, s);
    return s;
  }
  if (!train) {
    read_cifar_file(dir + "/test_batch.bin", 1, s);
    return s;
  }
  int last = 1;  // the batches present: 1..last, with no gap (fewer than 5 is a subset)
  while (last < 5 && is_regular_file(dir + "/data_batch_" + std::to_string(last + 1) + ".bin")) ++last;
  for (int b = last + 2; b <= 5; ++b)
    NAS_CHECK(!is_regular_file(dir + "/data_batch_" + std::to_string(b) + ".bin"), IoError,
              dir << "/data_batch_" << last + 1 << ".bin: cannot open: no such file (data_batch_" << b
                  << ".bin exists: a batch is missing)");
  // The whole set's pixels reserved first, so that appending the batches copies nothing twice.
  size_t total = 0;
  for (int b = 1; b <= last; ++b) {
    struct stat st {};
    if (::stat((dir + "/data_batch_" + std::to_string(b) + ".bin").c_str(), &st) == 0)
      total += static_cast<size_t>(st.st_size) / (1 + kCifarPixels) * kCifarPixels;
  }
  s.owned_pixels.reserve(total);
  for (int b = 1; b <= last; ++b) read_cifar_file(dir + "/data_batch_" + std::to_string(b) + ".bin", 1, s);
  return s;
}

#ifdef NAS_HAVE_STB
bool image_decoding_available() { return true; }

std::vector<std::string> class_folders(const std::string& dir) {
  std::vector<std::string> classes;
  for (const auto& name : list_dir(dir))
    if (name[0] != '.' && is_directory(dir + "/" + name)) classes.push_back(name);  // hidden ones skipped
  NAS_CHECK(classes.size() >= 2, IoError,
            dir << ": expected one folder per class (at least 2), found " << classes.size());
  return classes;
}

ImageSet load_image_folder(const std::string& dir, const std::vector<std::string>& classes, size_t spill_above) {
  ImageSet s;
  for (const auto& folder : class_folders(dir))
    NAS_CHECK(std::find(classes.begin(), classes.end(), folder) != classes.end(), IoError,
              dir << "/" << folder << ": expected a class of the training set, found a folder with another name");
  // First the headers (stbi_info reads a few bytes of each file): the sizes are checked and the
  // total known before any pixel is decoded, so that the pixels are written once, into memory of
  // the exact size, or into a spill file when they are big.
  std::vector<std::pair<std::string, int64_t>> files;  // path, label
  for (size_t k = 0; k < classes.size(); ++k) {
    const std::string cdir = dir + "/" + classes[k];
    if (!is_directory(cdir)) continue;  // a test set may lack a class
    for (const auto& name : list_dir(cdir)) {
      if (name[0] == '.') continue;
      const std::string f = cdir + "/" + name;
      int w = 0, h = 0, c = 0;
      NAS_CHECK(stbi_info(f.c_str(), &w, &h, &c) == 1, IoError,
                f << ": cannot decode as an image (" << stbi_failure_reason() << ")");
      if (files.empty()) {
        s.h = h;
        s.w = w;
        s.c = c;
      }
      NAS_CHECK(h == s.h && w == s.w && c == s.c, IoError,
                f << ": expected " << s.w << "x" << s.h << " with " << s.c << " channel(s) like the first image, found "
                  << w << "x" << h << " with " << c);
      files.emplace_back(f, static_cast<int64_t>(k));
    }
  }
  NAS_CHECK(!files.empty(), IoError, dir << ": expected images in its class folders, found none");
  const size_t image_bytes = static_cast<size_t>(s.h) * s.w * s.c, total = image_bytes * files.size();
  std::unique_ptr<SpillFile> spill;
  if (total > spill_above)
    spill = std::make_unique<SpillFile>(dir);
  else
    s.owned_pixels.reserve(total);
  for (const auto& [f, label] : files) {
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load(f.c_str(), &w, &h, &c, 0);
    NAS_CHECK(px != nullptr, IoError, f << ": cannot decode as an image (" << stbi_failure_reason() << ")");
    const bool same = h == s.h && w == s.w && c == s.c;  // the header said so; the decoder must agree
    if (same && spill) spill->append(px, image_bytes);
    if (same && !spill) s.owned_pixels.insert(s.owned_pixels.end(), px, px + image_bytes);
    stbi_image_free(px);
    NAS_CHECK(same, IoError, f << ": decoded as " << w << "x" << h << " with " << c << " channel(s), its header says "
                               << s.w << "x" << s.h << " with " << s.c);
    s.labels.push_back(label);
  }
  s.n = static_cast<int64_t>(files.size());
  if (spill) s.mapped = spill->map();
  s.num_classes = static_cast<int>(classes.size());
  return s;
}
#else
bool image_decoding_available() { return false; }

std::vector<std::string> class_folders(const std::string& dir) {
  throw UsageError(dir + ": image folders need libstb-dev at build time (scripts/setup.sh installs it)");
}

ImageSet load_image_folder(const std::string& dir, const std::vector<std::string>&, size_t) {
  throw UsageError(dir + ": image folders need libstb-dev at build time (scripts/setup.sh installs it)");
}
#endif

ImageSet load_dataset(const spec::DataSpec& d, const std::string& path, bool train) {
  if (d.format != "csv") return load_dataset(d.format, path, train);
  CsvOptions o;
  o.label = d.label;
  o.header = d.header;
  o.skip_rows = d.skip_rows;
  o.test_fraction = d.test_fraction;
  o.seed = d.split_seed;
  o.regression = d.task == "regression";
  return load_csv(path, o, train);
}

ImageSet load_dataset(const std::string& format, const std::string& dir, bool train) {
  if (format == "cifar") return load_cifar_dir(dir, train);
  if (format == "folder") return load_image_folder(dir + (train ? "/train" : "/test"), class_folders(dir + "/train"));
  NAS_CHECK(format == "idx", SpecError, "data.format: expected idx, cifar or folder, found \"" << format << "\"");
  return load_mnist_dir(dir, train);
}

}  // namespace nas::data
