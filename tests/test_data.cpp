#include <zlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "catch.h"
#include "core/error.h"
#include "data/idx.h"
#include "data/loader.h"
#include "helpers.h"

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
    CHECK(a.data == px);
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
  CHECK_THAT(io_error([&] { data::read_idx(dir + "/huge.idx"); }), Catch::Matchers::Contains("more than 8 GiB"));

  CHECK_THAT(io_error([&] { data::read_idx(dir + "/missing.idx"); }),
             Catch::Matchers::Contains("missing.idx: cannot open: No such file or directory"));
  CHECK_THAT(io_error([&] { data::read_idx(dir); }), Catch::Matchers::Contains("expected a file, found a directory"));
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
  for (int i = 0; i < 4 * 16; ++i) set.pixels.push_back(static_cast<uint8_t>(i % 16 * 10));
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
