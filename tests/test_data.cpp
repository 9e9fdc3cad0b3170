#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catch.h"
#include "core/error.h"
#include "core/log.h"
#include "data/csv.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/loader.h"
#include "families/documents.h"
#include "helpers.h"
#include "spec/bench_result.h"
#include "spec/train_spec.h"

#ifdef NAS_HAVE_STB_WRITE
#include <stb/stb_image_write.h>
#endif

using namespace nas;

namespace {
std::string idx_bytes(const std::vector<int>& dims, const std::vector<uint8_t>& payload, uint8_t type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (int d : dims) {
    s.push_back(static_cast<char>((d >> 24) & 0xff));
    s.push_back(static_cast<char>((d >> 16) & 0xff));
    s.push_back(static_cast<char>((d >> 8) & 0xff));
    s.push_back(static_cast<char>(d & 0xff));
  }
  s.append(payload.begin(), payload.end());
  return s;
}
void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}
template <class F>
std::string io_error(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    CHECK(e.exit_code() == 4);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("IDX reader reads plain and gzip files written by the test", "[data]") {
  std::string dir = test::temp_dir("idx");
  std::vector<uint8_t> px(3 * 4 * 5);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
  std::string bytes = idx_bytes({3, 4, 5}, px);
  test::spit(dir + "/a.idx", bytes);
  write_gz(dir + "/a.idx.gz", bytes);
  for (const char* name : {"/a.idx", "/a.idx.gz"}) {
    auto a = data::read_idx(dir + name);
    CHECK(a.dims == std::vector<int64_t>{3, 4, 5});
    REQUIRE(a.size() == px.size());
    CHECK(std::vector<uint8_t>(a.bytes(), a.bytes() + a.size()) == px);
    CHECK((a.map != nullptr) == (std::string(name) == "/a.idx"));  // plain files are mapped, not read
  }
}

TEST_CASE("IDX reader rejects corrupted headers and truncated files", "[data]") {
  std::string dir = test::temp_dir("idxbad");
  std::vector<uint8_t> px(2 * 3 * 3, 1);
  std::string good = idx_bytes({2, 3, 3}, px);

  std::string bad_magic = good;
  bad_magic[0] = 0x1f;
  bad_magic[1] = 0x00;
  test::spit(dir + "/magic.idx", bad_magic);
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/magic.idx"); }),
             Catch::Matchers::Contains("magic.idx: not an IDX file: expected magic bytes 00 00"));

  test::spit(dir + "/type.idx", idx_bytes({2, 3, 3}, px, 0x0d));
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/type.idx"); }),
             Catch::Matchers::Contains("unsupported IDX element type 0xd"));

  test::spit(dir + "/trunc.idx", good.substr(0, good.size() - 5));
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/trunc.idx"); }),
             Catch::Matchers::Contains("trunc.idx: truncated IDX payload: expected 18 bytes, found 13"));

  test::spit(dir + "/hdr.idx", good.substr(0, 6));
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/hdr.idx"); }), Catch::Matchers::Contains("truncated IDX header"));

  test::spit(dir + "/long.idx", good + "xx");
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/long.idx"); }), Catch::Matchers::Contains("found more"));

  // A gzip stream cut in the middle.
  write_gz(dir + "/cut.gz", idx_bytes({50, 20, 20}, std::vector<uint8_t>(20000, 3)));
  std::string gz = test::slurp(dir + "/cut.gz");
  test::spit(dir + "/cut.gz", gz.substr(0, gz.size() / 2));
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/cut.gz"); }), Catch::Matchers::Contains("cut.gz"));

  // Absurd dimensions are refused before allocating.
  test::spit(dir + "/huge.idx", idx_bytes({60000, 60000, 60000}, {}));
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/huge.idx"); }), Catch::Matchers::Contains("more than 1 TiB"));

  CHECK_THAT(io_error([&] { data::read_idx(dir + "/missing.idx"); }),
             Catch::Matchers::Contains("missing.idx: cannot open: No such file or directory"));
  CHECK_THAT(io_error([&] { data::read_idx(dir); }), Catch::Matchers::Contains("expected a file, found a directory"));
}

namespace {
// Sets an environment variable for a scope and restores what it was (or its absence).
struct EnvGuard {
  std::string name;
  bool had = false;
  std::string old;
  EnvGuard(const std::string& n, const std::string& value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) {
      had = true;
      old = v;
    }
    ::setenv(n.c_str(), value.c_str(), 1);
  }
  ~EnvGuard() {
    if (had)
      ::setenv(name.c_str(), old.c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};
// This process's anonymous resident memory (what it holds itself, page cache aside), MiB.
double rss_anon_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stod(line.substr(8)) / 1024.0;
  return -1;
}
// The IDX header of n 28x28 images, then pixel (i, p) = (i * 7 + p) % 251, written in 4 MiB pieces
// (to a plain file, or through zlib at level 1).
void write_pattern_idx(const std::string& path, int n, bool gz) {
  std::string head = idx_bytes({n, 28, 28}, {});
  std::vector<uint8_t> piece;
  FILE* plain = gz ? nullptr : std::fopen(path.c_str(), "wb");
  gzFile z = gz ? gzopen(path.c_str(), "wb1") : nullptr;
  REQUIRE((plain || z));
  auto put = [&](const void* p, size_t len) {
    if (gz)
      REQUIRE(gzwrite(z, p, static_cast<unsigned>(len)) == static_cast<int>(len));
    else
      REQUIRE(std::fwrite(p, 1, len, plain) == len);
  };
  put(head.data(), head.size());
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 784; ++p) piece.push_back(static_cast<uint8_t>((int64_t{i} * 7 + p) % 251));
    if (piece.size() >= (size_t{4} << 20) || i == n - 1) {
      put(piece.data(), piece.size());
      piece.clear();
    }
  }
  if (gz) REQUIRE(gzclose(z) == Z_OK);
  if (plain) REQUIRE(std::fclose(plain) == 0);
}
}  // namespace

TEST_CASE("big IDX sets are mapped, not held: a plain file in place, a big gzip one through a spill file", "[data]") {
  const std::string d = test::temp_dir("bigidx");
  // 140,000 images (105 MiB) in a plain file; 360,000 (270 MiB, over kSpillAboveBytes)
  // gzip-compressed.
  const int plain_n = 140000, gz_n = 360000;
  write_pattern_idx(d + "/plain-images", plain_n, false);
  write_pattern_idx(d + "/packed-images.gz", gz_n, true);
  REQUIRE(size_t{gz_n} * 784 > data::kSpillAboveBytes);
  for (auto [name, n] : {std::pair<std::string, int>{"plain", plain_n}, {"packed", gz_n}}) {
    const std::string labels = d + "/" + name + "-labels";
    test::spit(labels, idx_bytes({n}, std::vector<uint8_t>(static_cast<size_t>(n), 3)));
    const std::string images = d + "/" + name + (name == "packed" ? "-images.gz" : "-images");
    INFO(images);
    const std::string spill_dir = d + "/spill-" + name;
    REQUIRE(test::run_cmd("mkdir " + spill_dir).code == 0);
    data::ImageSet set;
    double before = 0, after = 0;
    {
      EnvGuard tmp("TMPDIR", spill_dir);
      before = rss_anon_mib();
      set = data::load_idx_pair(images, labels);
      after = rss_anon_mib();
    }
    REQUIRE(set.n == n);
    CHECK(set.mapped != nullptr);
    CHECK(set.owned_pixels.empty());
    // Before mapping, the pixels alone took 105 and 270 MiB of this process's own memory. (Under
    // AddressSanitizer 25.8 MiB were measured: most likely the gzip reader's freed 16 MiB buffer,
    // kept resident by ASan's quarantine.)
    CHECK(after - before < (test::kSanitized ? 48 : 24));
    CHECK(test::count_files(spill_dir) == 0);  // the spill file has no name: nothing to leave behind
    // The right bytes, first, last and in between, and batches built from them.
    for (int64_t i : {int64_t{0}, int64_t{n / 2 + 13}, int64_t{n - 1}})
      for (int p : {0, 391, 783}) CHECK(set.image(i)[p] == static_cast<uint8_t>((i * 7 + p) % 251));
    data::LoaderOptions o;
    o.batch_size = 64;
    auto b = data::make_batch(set, {int64_t{n - 1}, 5}, o, 0);
    CHECK(b.x[0][0][0][0].item<float>() == Approx(static_cast<float>(((n - 1) * 7) % 251) / 255.0f));
    CHECK(b.x[1][0][27][27].item<float>() == Approx(static_cast<float>((5 * 7 + 783) % 251) / 255.0f));
  }
}

TEST_CASE("a mapped dataset truncated while in use: one line on stderr and exit 4, not a crash", "[data]") {
  const std::string d = test::temp_dir("sigbus");
  write_pattern_idx(d + "/images", 20000, false);  // 15 MiB
  test::spit(d + "/labels", idx_bytes({20000}, std::vector<uint8_t>(20000, 1)));
  const std::string err = d + "/stderr.txt";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // the child: map the set, cut the file under it, read a lost page
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDERR_FILENO);
    set_log_prefix("nas-sigbus-test");
    data::ImageSet set = data::load_idx_pair(d + "/images", d + "/labels");
    if (::truncate((d + "/images").c_str(), 4096) != 0) ::_exit(2);
    volatile uint8_t v = set.image(19999)[0];
    (void)v;
    ::_exit(0);  // not reached when the page is gone
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 4);
  const std::string text = test::slurp(err);
  CHECK_THAT(text, Catch::Matchers::Contains("nas-sigbus-test: error: a mapped data file was truncated or became "
                                             "unreadable while in use (SIGBUS)"));
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
}

TEST_CASE("Fashion-MNIST loads with the right shapes and a seeded split", "[data]") {
  auto test_set = data::load_mnist_dir(test::kFmnist, false);
  CHECK(test_set.n == 10000);
  CHECK(test_set.h == 28);
  CHECK(test_set.w == 28);
  CHECK(test_set.c == 1);
  CHECK(test_set.num_classes == 10);
  std::vector<int> counts(10, 0);
  for (auto l : test_set.labels) counts[l]++;
  for (int c : counts) CHECK(c == 1000);  // the test set is balanced

  auto s1 = data::make_split(60000, 5000, 7);
  auto s2 = data::make_split(60000, 5000, 7);
  auto s3 = data::make_split(60000, 5000, 8);
  CHECK(s1.val.size() == 5000);
  CHECK(s1.train.size() == 55000);
  CHECK(s1.val == s2.val);
  CHECK(s1.val != s3.val);
  std::vector<char> seen(60000, 0);
  for (auto i : s1.val) seen[i]++;
  for (auto i : s1.train) seen[i]++;
  for (char c : seen) REQUIRE(c == 1);  // disjoint and complete
  auto lim = data::make_split(60000, 5000, 7, 2000);
  CHECK(lim.train.size() == 2000);
  CHECK(lim.val == s1.val);  // the limit never changes the validation split
}

TEST_CASE("batches are normalized, augmented deterministically and prefetched in order", "[data]") {
  data::ImageSet set;
  set.n = 4;
  set.h = set.w = 4;
  set.c = 1;
  set.num_classes = 2;
  for (int i = 0; i < 4 * 16; ++i) set.owned_pixels.push_back(static_cast<uint8_t>(i % 16 * 10));
  set.labels = {0, 1, 0, 1};
  data::LoaderOptions o;
  o.batch_size = 2;
  o.norm.mean = {0.5};
  o.norm.std = {0.25};
  auto b = data::make_batch(set, {0, 1}, o, 0);
  CHECK(b.x.sizes() == torch::IntArrayRef({2, 1, 4, 4}));
  // pixel 30 -> (30/255 - 0.5) / 0.25
  CHECK(b.x[0][0][0][3].item<float>() == Approx((30.0 / 255 - 0.5) / 0.25).epsilon(1e-5));
  CHECK(b.y[1].item<int64_t>() == 1);

  o.hflip = true;
  o.crop_padding = 1;
  auto a1 = data::make_batch(set, {0, 1, 2, 3}, o, 42);
  auto a2 = data::make_batch(set, {0, 1, 2, 3}, o, 42);
  CHECK(torch::equal(a1.x, a2.x));
  data::LoaderOptions no_aug;
  no_aug.norm = o.norm;
  auto plain4 = data::make_batch(set, {0, 1, 2, 3}, no_aug, 0);
  bool changed = false;
  for (uint64_t seed = 0; seed < 8; ++seed)
    changed = changed || !torch::equal(data::make_batch(set, {0, 1, 2, 3}, o, seed).x, plain4.x);
  CHECK(changed);
  // An augmented image keeps its pixel values (a shift with black padding and/or a mirror).
  auto plain = data::make_batch(set, {0}, data::LoaderOptions{}, 0).x;
  auto aug = data::make_batch(set, {0}, [&] { auto p = data::LoaderOptions{}; p.hflip = true; return p; }(), 3).x;
  CHECK((torch::equal(aug, plain) || torch::equal(aug, plain.flip({3}))));

  // Prefetching on a thread gives exactly the batches made on the calling thread.
  auto full = data::load_mnist_dir(test::kFmnist, false);
  auto idx = data::iota_indices(full.n, 1000);
  data::LoaderOptions lo;
  lo.batch_size = 96;
  lo.shuffle = true;
  lo.crop_padding = 2;
  lo.hflip = true;
  lo.seed = 5;
  lo.epoch = 3;
  lo.prefetch = 0;
  data::BatchLoader sync(full, idx, lo);
  lo.prefetch = 3;
  data::BatchLoader async(full, idx, lo);
  CHECK(sync.num_batches() == 11);
  int n = 0;
  while (auto x = sync.next()) {
    auto y = async.next();
    REQUIRE(y);
    CHECK(torch::equal(x->x, y->x));
    CHECK(torch::equal(x->y, y->y));
    ++n;
  }
  CHECK(n == 11);
  CHECK_FALSE(async.next());
  // Starting at batch 4 (resume) gives the same batch 4.
  lo.start_batch = 4;
  data::BatchLoader resumed(full, idx, lo);
  lo.start_batch = 0;
  data::BatchLoader again(full, idx, lo);
  for (int i = 0; i < 4; ++i) again.next();
  CHECK(torch::equal(resumed.next()->x, again.next()->x));
}

namespace {
// n CIFAR records: label bytes (CIFAR-100: coarse = 99 - fine, then fine) and channel-planar pixels
// whose value encodes (record, channel, position) so that the interleaving can be checked.
std::string cifar_records(int n, int label_bytes, int first_label) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    const int label = (first_label + i) % (label_bytes == 1 ? 10 : 100);
    if (label_bytes == 2) out.push_back(static_cast<char>(99 - label));
    out.push_back(static_cast<char>(label));
    for (int ch = 0; ch < 3; ++ch)
      for (int p = 0; p < 32 * 32; ++p) out.push_back(static_cast<char>((i * 7 + ch * 50 + p) % 256));
  }
  return out;
}
}  // namespace

TEST_CASE("CIFAR-10 and CIFAR-100 binary files written by the test", "[data]") {
  std::string d = test::temp_dir("cifar10");
  test::spit(d + "/data_batch_1.bin", cifar_records(4, 1, 0));
  test::spit(d + "/data_batch_2.bin", cifar_records(3, 1, 4));
  test::spit(d + "/test_batch.bin", cifar_records(2, 1, 8));
  auto train = data::load_dataset("cifar", d, true);
  CHECK(train.n == 7);
  CHECK(train.h == 32);
  CHECK(train.w == 32);
  CHECK(train.c == 3);
  CHECK(train.num_classes == 10);
  CHECK(train.labels == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
  // Record 5 (the second of batch 2), channel 2 (blue), pixel (row 1, column 3): interleaved HWC.
  const int p = 1 * 32 + 3;
  CHECK(train.image(5)[p * 3 + 2] == static_cast<uint8_t>((1 * 7 + 2 * 50 + p) % 256));
  CHECK(train.image(5)[p * 3 + 0] == static_cast<uint8_t>((1 * 7 + p) % 256));
  auto test_set = data::load_dataset("cifar", d, false);
  CHECK(test_set.n == 2);
  CHECK(test_set.labels[1] == 9);
  // CIFAR-100: the fine label (the second byte) is the class.
  std::string e = test::temp_dir("cifar100");
  test::spit(e + "/train.bin", cifar_records(5, 2, 97));
  test::spit(e + "/test.bin", cifar_records(1, 2, 0));
  auto c100 = data::load_dataset("cifar", e, true);
  CHECK(c100.num_classes == 100);
  CHECK(c100.labels == std::vector<int64_t>{97, 98, 99, 0, 1});
  // A truncated file, and CIFAR-100 records read as CIFAR-10: clear errors naming the file.
  test::spit(d + "/data_batch_1.bin", cifar_records(4, 1, 0).substr(0, 3000));
  CHECK_THROWS_WITH(data::load_dataset("cifar", d, true),
                    Catch::Matchers::Contains("data_batch_1.bin: expected CIFAR records of 3073 bytes"));
  std::string f = test::temp_dir("cifar-wrong");
  test::spit(f + "/data_batch_1.bin", cifar_records(3, 2, 0));
  CHECK_THROWS_WITH(data::load_dataset("cifar", f, true), Catch::Matchers::Contains("not a multiple"));
  CHECK_THROWS_WITH(data::load_dataset("cifar", f, false), Catch::Matchers::Contains("test_batch.bin"));
  // A missing batch between present ones.
  std::string gap = test::temp_dir("cifar-gap");
  test::spit(gap + "/data_batch_1.bin", cifar_records(1, 1, 0));
  test::spit(gap + "/data_batch_3.bin", cifar_records(1, 1, 0));
  CHECK_THROWS_WITH(data::load_dataset("cifar", gap, true), Catch::Matchers::Contains("data_batch_2.bin: cannot open"));
}

TEST_CASE("image folders: one folder per class, PNG and JPEG written by the test", "[data]") {
#ifndef NAS_HAVE_STB_WRITE
  WARN("skipped: this build has no libstb-dev");
#else
  REQUIRE(data::image_decoding_available());
  std::string d = test::temp_dir("folders");
  auto write = [&](const std::string& rel, int w, int h, int c, int value, bool jpeg) {
    std::vector<uint8_t> px(static_cast<size_t>(w * h * c));
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((value + 3 * i) % 256);
    std::string path = d + "/" + rel;
    test::run_cmd("mkdir -p $(dirname " + path + ")");
    int ok = jpeg ? stbi_write_jpg(path.c_str(), w, h, c, px.data(), 95) : stbi_write_png(path.c_str(), w, h, c, px.data(), w * c);
    REQUIRE(ok != 0);
    return px;
  };
  auto first = write("train/cat/a.png", 6, 4, 3, 10, false);
  write("train/cat/b.png", 6, 4, 3, 20, false);
  write("train/dog/c.jpg", 6, 4, 3, 30, true);
  write("train/emu/d.png", 6, 4, 3, 40, false);
  write("test/cat/e.png", 6, 4, 3, 50, false);
  write("test/dog/f.png", 6, 4, 3, 60, false);
  write("test/emu/g.png", 6, 4, 3, 70, false);
  auto train = data::load_dataset("folder", d, true);
  CHECK(train.n == 4);
  CHECK(train.h == 4);
  CHECK(train.w == 6);
  CHECK(train.c == 3);
  CHECK(train.num_classes == 3);  // cat, dog, emu in sorted order
  CHECK(train.labels == std::vector<int64_t>{0, 0, 1, 2});
  CHECK(std::equal(first.begin(), first.end(), train.image(0)));  // PNG is lossless
  CHECK(data::load_dataset("folder", d, false).labels == std::vector<int64_t>{0, 1, 2});
  {
    // Over the spill threshold (0 here), the decoded pixels go to a mapped spill file, the same bytes.
    const std::string spill = d + "-spill";
    REQUIRE(test::run_cmd("mkdir " + spill).code == 0);
    data::ImageSet mapped;
    {
      EnvGuard tmp("TMPDIR", spill);
      mapped = data::load_image_folder(d + "/train", data::class_folders(d + "/train"), 0);
    }
    CHECK(mapped.mapped != nullptr);
    CHECK(mapped.owned_pixels.empty());
    CHECK(mapped.labels == train.labels);
    REQUIRE(mapped.n == train.n);
    CHECK(std::equal(train.image(0), train.image(0) + train.n * 6 * 4 * 3, mapped.image(0)));
    CHECK(test::count_files(spill) == 0);
    CHECK(train.mapped == nullptr);  // 288 bytes: in memory
  }
  // A test set without one class keeps the training labels; hidden folders are left out.
  test::run_cmd("rm -r " + d + "/test/cat && mkdir -p " + d + "/test/.ipynb_checkpoints");
  write("test/.ipynb_checkpoints/h.png", 6, 4, 3, 80, false);
  auto fewer = data::load_dataset("folder", d, false);
  CHECK(fewer.labels == std::vector<int64_t>{1, 2});
  CHECK(fewer.num_classes == 3);
  write("test/owl/o.png", 6, 4, 3, 90, false);
  CHECK_THROWS_WITH(data::load_dataset("folder", d, false),
                    Catch::Matchers::Contains("test/owl: expected a class of the training set"));
  test::run_cmd("rm -r " + d + "/test/owl");
  // Grayscale, any number of classes: a 1-channel set.
  std::string g = test::temp_dir("folders-gray");
  for (int k = 0; k < 5; ++k) {
    std::string saved = d;
    d = g;
    write("train/c" + std::to_string(k) + "/x.png", 5, 5, 1, k, false);
    d = saved;
  }
  auto gray = data::load_dataset("folder", g, true);
  CHECK(gray.c == 1);
  CHECK(gray.num_classes == 5);
  // An image of another size, a file that is no image, a missing split: errors naming the file.
  write("train/dog/big.png", 8, 8, 3, 0, false);
  CHECK_THROWS_WITH(data::load_dataset("folder", d, true),
                    Catch::Matchers::Contains("train/dog/big.png: expected 6x4 with 3 channel(s) like the first image, found 8x8 with 3"));
  test::run_cmd("rm " + d + "/train/dog/big.png");
  test::spit(d + "/train/emu/notes.txt", "not an image");
  CHECK_THROWS_WITH(data::load_dataset("folder", d, true),
                    Catch::Matchers::Contains("train/emu/notes.txt: cannot decode as an image"));
  CHECK_THROWS_WITH(data::load_dataset("folder", g, false), Catch::Matchers::Contains("test: cannot open: expected a directory"));
#endif
}

namespace {
// Trains a supernet of `space` with the spec d/train.yaml, slices its max child and runs
// nas-benchmark on the dataset's test split: the nas.bench document (REQUIREs each step).
// A value in [0, 10) from a 64-bit LCG state (rows of test CSV files).
double uniform_0_10(uint64_t& x) {
  x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return static_cast<double>((x >> 33) % 1000) / 100.0;
}

nlohmann::json train_slice_test(const std::string& d, const std::string& space) {
  auto rt = test::tool("nas-train-supernet",
                       {"--space", space, "--train", d + "/train.yaml", "--out", d + "/run", "--threads", "2", "-q"});
  INFO(rt.err);
  REQUIRE(rt.code == 0);
  auto rs = test::tool("nas-slice", {"--supernet", d + "/run/supernet.ckpt", "--arch", "max", "--out",
                                     d + "/child.ckpt", "--threads", "2", "-q"});
  INFO(rs.err);
  REQUIRE(rs.code == 0);
  auto rb = test::tool("nas-benchmark", {"--model", d + "/child.ckpt", "--threads", "1", "--max-time", "0.5", "-q",
                                         "--out", d + "/bench.json"});
  INFO(rb.err);
  REQUIRE(rb.code == 0);
  return nlohmann::json::parse(test::slurp(d + "/bench.json"));
}

}  // namespace

namespace {
// train_slice_test on d/data.csv (400 rows) with a small mlp space; `fields` completes the data
// section (label, task).
nlohmann::json train_csv_mlp(const std::string& d, const std::string& fields, int epochs, double lr) {
  test::spit(d + "/space.yaml", "kind: nas.search_space\nschema_version: 1\nname: csv-mlp\nfamily: mlp\nresolution: [1]\n"
                                "depth: [1, 2]\nlayers: [{width: [8, 16], act: [relu, tanh]}]\n");
  test::spit(d + "/train.yaml", "kind: nas.train\nschema_version: 1\ndata: {format: csv, path: " + d + "/data.csv, " +
                                    fields + ", validation_images: 60}\nepochs: " + std::to_string(epochs) +
                                    "\nbatch_size: 32\noptimizer: {lr: " + std::to_string(lr) +
                                    "}\nbn_calibration: {images: 200, batch_size: 100}\n");
  return train_slice_test(d, d + "/space.yaml");
}
}  // namespace

TEST_CASE("a supernet trains on CIFAR-format data and its child is tested on the CIFAR test file", "[data]") {
  // 3-channel 32x32 records whose class shows in the pixels (channel = class mod 3 is bright), so
  // that a few steps learn something.
  std::string d = test::temp_dir("cifar-tool");
  auto records = [](int n, uint64_t seed) {
    std::string out;
    uint64_t x = seed;
    for (int i = 0; i < n; ++i) {
      const int label = i % 3;
      out.push_back(static_cast<char>(label));
      for (int ch = 0; ch < 3; ++ch)
        for (int p = 0; p < 32 * 32; ++p) {
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
          out.push_back(static_cast<char>((ch == label ? 128 : 0) + static_cast<int>((x >> 33) % 100)));
        }
    }
    return out;
  };
  test::spit(d + "/data_batch_1.bin", records(400, 1));
  test::spit(d + "/test_batch.bin", records(90, 2));
  test::spit(d + "/train.yaml", "kind: nas.train\nschema_version: 1\ndata: {format: cifar, path: " + d +
                                    ", validation_images: 100, mean: [0.4, 0.4, 0.4], std: [0.3, 0.3, 0.3], crop_padding: 0,"
                                    " hflip: false}\nepochs: 1\nbatch_size: 50\noptimizer: {lr: 0.05}\n"
                                    "bn_calibration: {images: 100, batch_size: 50}\n");
  auto bench = train_slice_test(d, test::test_data("tiny-space.yaml"));
  CHECK(bench["accuracy"]["test_images"] == 90);
  // 6 steps: how far above chance (1/3) they get is up to the BLAS kernel's rounding, so no accuracy
  // bar. Asserted: the CIFAR test file's 90 records, scored as this test scores them (one image of
  // slack), with the labels the CIFAR reader gives them.
  CHECK(bench["accuracy"]["top1"].get<double>() ==
        Approx(test::child_top1(d + "/child.ckpt", data::load_dataset("cifar", d, false), 90)).margin(1.0 / 90));
}

TEST_CASE("CSV: header names, label by name or index, classes, split and standardization", "[data]") {
  std::string d = test::temp_dir("csv");
  // 20 rows: x1 = i, x2 = 10 (constant), label "yes"/"no".
  std::string text = "x1, x2 ,kind\n";
  for (int i = 0; i < 20; ++i) text += std::to_string(i) + ",10," + (i % 2 ? "yes" : "\"no\"") + "\n";
  test::spit(d + "/t.csv", text);
  data::CsvOptions o;
  o.label = "kind";
  o.test_fraction = 0.25;
  auto t = data::read_csv(d + "/t.csv", o);
  CHECK(t.rows == 20);
  CHECK(t.feature_names == std::vector<std::string>{"x1", "x2"});
  CHECK(t.classes == std::vector<std::string>{"no", "yes"});
  CHECK(t.labels[3] == 1);
  auto train = data::load_csv(d + "/t.csv", o, true);
  auto test_set = data::load_csv(d + "/t.csv", o, false);
  CHECK(train.n == 15);
  CHECK(test_set.n == 5);
  CHECK(train.tabular());
  CHECK(train.c == 2);
  CHECK(train.h == 1);
  CHECK(train.num_classes == 2);
  // Standardized with the training rows' statistics: mean 0 and deviation 1 there, a constant
  // column 0; the test rows with the same statistics (so not mean 0 themselves in general).
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < train.n; ++i) sum += train.features[i * 2], sq += train.features[i * 2] * train.features[i * 2];
  CHECK(sum / 15 == Approx(0).margin(1e-5));
  CHECK(sq / 15 == Approx(1).epsilon(1e-4));
  for (int64_t i = 0; i < train.n; ++i) CHECK(train.features[i * 2 + 1] == 0.0f);
  std::set<int64_t> parity;
  for (int64_t i = 0; i < train.n; ++i) parity.insert(train.labels[i]);
  CHECK(parity.size() == 2);
  // The same seed, the same split; another seed, another one.
  CHECK(data::load_csv(d + "/t.csv", o, false).features == test_set.features);
  o.seed = 7;
  CHECK(data::load_csv(d + "/t.csv", o, false).features != test_set.features);
  // Without a header, the label by index; numeric labels are ordered by value.
  test::spit(d + "/n.csv", "3,1.5,10\n2,2.5,2\n1,3.5,10\n0,4.5,2\n");
  data::CsvOptions n;
  n.header = false;
  n.label = "#2";
  auto nt = data::read_csv(d + "/n.csv", n);
  CHECK(nt.classes == std::vector<std::string>{"2", "10"});
  CHECK(nt.labels == std::vector<int64_t>{1, 0, 1, 0});
  CHECK(nt.feature_names == std::vector<std::string>{"#0", "#1"});
  // Quoted fields (commas and "" inside), a byte-order mark, CRLF line ends.
  test::spit(d + "/q.csv", "\xEF\xBB\xBF\"Price, USD\",size,\"kind\"\r\n1.5,2,\"say \"\"hi\"\", twice\"\r\n2.5,3,plain\r\n");
  data::CsvOptions q;
  q.label = "kind";
  auto qt = data::read_csv(d + "/q.csv", q);
  CHECK(qt.feature_names == std::vector<std::string>{"Price, USD", "size"});
  CHECK(qt.classes == std::vector<std::string>{"plain", "say \"hi\", twice"});
  CHECK(qt.features == std::vector<double>{1.5, 2, 2.5, 3});
  // Errors naming the file, the line and the column.
  test::spit(d + "/ragged.csv", "a,b,y\n1,2,0\n1,2\n");
  o.label = "y";
  CHECK_THROWS_WITH(data::read_csv(d + "/ragged.csv", o), Catch::Matchers::Contains("ragged.csv:3: expected 3 fields like the header, found 2"));
  test::spit(d + "/text.csv", "a,b,y\n1,2,0\n1,two,1\n");
  CHECK_THROWS_WITH(data::read_csv(d + "/text.csv", o), Catch::Matchers::Contains("text.csv:3: column b: expected a number, found \"two\""));
  o.label = "class";
  CHECK_THROWS_WITH(data::read_csv(d + "/text.csv", o),
                    Catch::Matchers::Contains("text.csv: data.label: expected a column named \"class\" among [a, b, y], found none"));
  n.label = "#5";
  CHECK_THROWS_WITH(data::read_csv(d + "/n.csv", n), Catch::Matchers::Contains("data.label: expected a column index below 3"));
  // The spec: a csv section needs a label and takes no pixel normalization.
  auto spec_with = [&](const std::string& extra) {
    return "kind: nas.train\nschema_version: 1\ndata: {format: csv, path: " + d + "/t.csv" + extra + "}\nepochs: 1\nbatch_size: 4\noptimizer: {lr: 0.1}\n";
  };
  test::spit(d + "/a.yaml", spec_with(""));
  CHECK_THROWS_WITH(spec::load_train_spec(d + "/a.yaml"), Catch::Matchers::Contains("a.yaml: data.label: expected the label column"));
  test::spit(d + "/b.yaml", spec_with(", label: kind, mean: [0.5]"));
  CHECK_THROWS_WITH(spec::load_train_spec(d + "/b.yaml"), Catch::Matchers::Contains("b.yaml: data.mean: expected nothing (format csv"));
  test::spit(d + "/c.yaml", spec_with(", label: kind, validation_images: 3"));
  auto ts = spec::load_train_spec(d + "/c.yaml");
  CHECK(spec::train_spec_from_json(spec::to_json(ts), "again").data.label == "kind");
}

TEST_CASE("an mlp supernet trains on a CSV file and its child is tested on the held-out rows", "[data]") {
  std::string d = test::temp_dir("csv-tool");
  // Two features; the class is which of them is larger (plus noise features).
  std::string text = "f1,f2,noise,label\n";
  uint64_t x = 3;
  auto next = [&] { return uniform_0_10(x); };
  for (int i = 0; i < 400; ++i) {
    double a = next(), b = next();
    text += std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(next()) + "," + (a > b ? "A" : "B") + "\n";
  }
  test::spit(d + "/data.csv", text);
  auto bench = train_csv_mlp(d, "label: label", 15, 0.1);
  CHECK(bench["accuracy"]["test_images"] == 80);  // 20% of 400
  CHECK(bench["accuracy"]["top1"].get<double>() > 0.85);
  // A corrupted file afterwards: the tools name it.
  test::spit(d + "/data.csv", text + "1,2\n");
  auto rx = test::tool("nas-benchmark", {"--model", d + "/child.ckpt", "--threads", "1", "-q", "--out", d + "/x.json"});
  CHECK(rx.code != 0);
  CHECK_THAT(rx.err, Catch::Matchers::Contains("data.csv:402: expected 4 fields like the header, found 2"));
  CHECK_FALSE(test::exists(d + "/x.json"));
}

TEST_CASE("CSV regression: a numeric target, MSE, and R^2 on the held-out rows", "[data]") {
  std::string d = test::temp_dir("csv-reg");
  std::string text = "a,b,c,y\n";
  uint64_t x = 11;
  auto next = [&] { return uniform_0_10(x); };
  for (int i = 0; i < 400; ++i) {
    double a = next(), b = next(), c = next();
    text += std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(c) + "," +
            std::to_string(100 + 2 * a - b + 0.05 * c) + "\n";
  }
  test::spit(d + "/data.csv", text);
  data::CsvOptions o;
  o.label = "y";
  o.regression = true;
  auto set = data::load_csv(d + "/data.csv", o, true);
  CHECK(set.regression());
  CHECK(set.num_classes == 1);
  CHECK(set.target_mean > 100);
  double m = 0;
  for (float v : set.targets) m += v;
  CHECK(m / static_cast<double>(set.n) == Approx(0).margin(1e-4));  // standardized
  auto bench = train_csv_mlp(d, "label: y, task: regression", 20, 0.05);
  CHECK(bench["accuracy"]["test_images"] == 80);
  CHECK_FALSE(bench["accuracy"].contains("top1"));
  CHECK(bench["accuracy"]["r2"].get<double>() > 0.9);  // a linear target
  auto back = families::bench_result_from_json(bench, "bench.json");
  CHECK(back.regression);
  // A label column that is not numeric, for regression.
  test::spit(d + "/bad.csv", "a,y\n1,2\n3,four\n");
  CHECK_THROWS_WITH(data::read_csv(d + "/bad.csv", o), Catch::Matchers::Contains("bad.csv: column y: expected a numeric target (task: regression), found \"four\""));
}
