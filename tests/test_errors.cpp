// Every bad input of docs/ERRORS.md: the test reads the table, builds the fixture files it names,
// runs each command and checks the exit code, the one-line message and that nothing is left
// behind.
#include <sys/mount.h>
#include <zlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "catch.h"
#include "core/io.h"
#include "core/rng.h"
#include "data/csv.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "helpers.h"
#include "spec/document.h"
#include "supernet/checkpoint.h"

using namespace nas;

namespace {

struct Row {
  int id = 0;
  std::string what, cmd, message;
  int code = -1;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '`')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '`')) ++i;
  return s.substr(i);
}

// The rows of the table in docs/ERRORS.md (lines "| <number> | ... |").
std::vector<Row> read_table() {
  std::istringstream in(test::slurp(test::src("docs/ERRORS.md")));
  std::vector<Row> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| ", 0) != 0) continue;
    std::vector<std::string> cells;
    size_t pos = 1;
    while (true) {
      size_t next = line.find(" | ", pos);
      if (next == std::string::npos) {
        cells.push_back(trim(line.substr(pos, line.size() - 1 - pos)));
        break;
      }
      cells.push_back(trim(line.substr(pos, next - pos)));
      pos = next + 2;
    }
    if (cells.size() != 5 || cells[0].empty() || !std::isdigit(static_cast<unsigned char>(cells[0][0]))) continue;
    Row r;
    r.id = std::stoi(cells[0]);
    r.what = cells[1];
    r.cmd = cells[2];
    r.code = std::stoi(cells[3]);
    r.message = cells[4];
    rows.push_back(r);
  }
  return rows;
}

// An IDX file: unsigned bytes with the given dimensions.
void write_idx(const std::string& path, const std::vector<int32_t>& dims, const std::vector<uint8_t>& data) {
  std::string b = {0, 0, 8, static_cast<char>(dims.size())};
  for (int32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
  b.append(reinterpret_cast<const char*>(data.data()), data.size());
  test::spit(path, b);
}

// A dataset directory of n images of h x w x c (c 0: 3-dimensional IDX) and labels 0..max_label.
void write_dataset(const std::string& dir, int n, int h, int w, int c, int max_label, int labels_n = -1) {
  ::mkdir(dir.c_str(), 0755);
  std::vector<int32_t> dims = {n, h, w};
  if (c > 0) dims.push_back(c);
  std::vector<uint8_t> px(static_cast<size_t>(n) * h * w * std::max(c, 1));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37) % 251);
  if (labels_n < 0) labels_n = n;
  std::vector<uint8_t> lb(static_cast<size_t>(labels_n));
  for (int i = 0; i < labels_n; ++i) lb[i] = static_cast<uint8_t>(i % (max_label + 1));
  for (std::string split : {"train", "t10k"}) {
    write_idx(dir + "/" + split + "-images-idx3-ubyte", dims, px);
    write_idx(dir + "/" + split + "-labels-idx1-ubyte", {labels_n}, lb);
  }
}

// The records of a zip file (a torch archive): name and where its data starts (after the local
// header, the name and the extra field torch uses for 64-byte alignment).
std::vector<std::pair<std::string, size_t>> zip_records(const std::string& b) {
  auto u16 = [&](size_t i) { return static_cast<size_t>(static_cast<uint8_t>(b[i]) | (static_cast<uint8_t>(b[i + 1]) << 8)); };
  std::vector<std::pair<std::string, size_t>> out;
  const std::string magic("PK\x03\x04", 4);
  for (size_t h = b.find(magic); h != std::string::npos && h + 30 <= b.size(); h = b.find(magic, h + 4)) {
    const size_t name_len = u16(h + 26), extra_len = u16(h + 28);
    out.emplace_back(b.substr(h + 30, name_len), h + 30 + name_len + extra_len);
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Flips `len` bytes at `offset` into the data of the record whose name ends in `name`.
void flip_record(const std::string& path, const std::string& name, size_t offset, size_t len) {
  std::string b = test::slurp(path);
  size_t at = std::string::npos;
  for (const auto& [n, data] : zip_records(b))
    if (at == std::string::npos && ends_with(n, name)) at = data;
  INFO(path << " (" << b.size() << " bytes): no record " << name);
  REQUIRE(at != std::string::npos);
  for (size_t i = 0; i < len; ++i) b[at + offset + i] = static_cast<char>(b[at + offset + i] ^ 0x5a);
  test::spit(path, b);
}

}  // namespace

TEST_CASE("docs/ERRORS.md: every bad input gets its exit code, a one-line error and no output", "[errors]") {
  auto rows = read_table();
  REQUIRE(rows.size() >= 30);
  std::string d = test::temp_dir("errors");
  ::chmod(d.c_str(), 0755);  // user nobody runs some rows
  const std::string space = test::test_data("tiny-space.yaml"), train = test::test_data("tiny-train.yaml");
  const std::string space_text = test::slurp(space), train_text = test::slurp(train);

  // The trained supernet, its max child, and broken copies.
  auto r = test::tool("nas-train-supernet", {"--space", space, "--train", train, "--out", d + "/sn", "--train-limit",
                                             "640", "--threads", "2", "-q"});
  REQUIRE(r.code == 0);
  const std::string sn = d + "/sn/supernet.ckpt", child = d + "/child.ckpt";
  r = test::tool("nas-slice", {"--supernet", sn, "--arch", "max", "--out", child, "-q"});
  REQUIRE(r.code == 0);
  const std::string bytes = test::slurp(sn);
  test::spit(d + "/trunc.ckpt", bytes.substr(0, bytes.size() / 2));
  test::spit(d + "/flipped.ckpt", bytes);
  flip_record(d + "/flipped.ckpt", "/data/0", 8, 16);
  std::string newer = bytes;
  size_t v = newer.find("\"format_version\":2");
  REQUIRE(v != std::string::npos);
  newer[v + 17] = '9';
  test::spit(d + "/newer.ckpt", newer);
  // An unfinished run whose optimizer state is corrupted: the archive holds the model's tensors,
  // then the metadata, then the optimizer's (momentum buffers, then a few small records).
  r = test::tool("nas-train-supernet", {"--space", space, "--train", train, "--out", d + "/optflip",
                                        "--stop-after-steps", "3", "--threads", "2", "-q"});
  REQUIRE(r.code == 0);
  int records = 0;
  for (const auto& rec : zip_records(test::slurp(d + "/optflip/supernet.ckpt")))
    records += rec.first.find("/data/") != std::string::npos;
  REQUIRE(records > 8);
  flip_record(d + "/optflip/supernet.ckpt", "/data/" + std::to_string(records - 8), 8, 16);

  ::mkdir((d + "/adir").c_str(), 0755);
  ::mkdir((d + "/readonly").c_str(), 0555);
  test::spit(d + "/empty.yaml", "");
  test::spit(d + "/secret.yaml", space_text);
  ::chmod((d + "/secret.yaml").c_str(), 0);
  test::spit(d + "/unknown-key.yaml", space_text + "colour: red\n");
  test::spit(d + "/wrong-type.yaml", test::replace_all(space_text, "resolution: [20, 24, 28]", "resolution: big"));
  test::spit(d + "/huge-width.yaml",
             test::replace_all(space_text, "stem: {width: [8, 12]", "stem: {width: [1000000000]"));
  test::spit(d + "/negative-depth.yaml",
             test::replace_all(space_text, "{depth: [1, 2], width: [8, 12]", "{depth: [-1, 2], width: [8, 12]"));
  test::spit(d + "/empty-choices.yaml", test::replace_all(space_text, "kernel: [3, 5], stride: 2, act: relu6",
                                                          "kernel: [], stride: 2, act: relu6"));
  test::spit(d + "/nan-lr.yaml", test::replace_all(train_text, "optimizer: {lr: 0.05}", "optimizer: {lr: .nan}"));
  test::spit(d + "/inf-smoothing.yaml", train_text + "label_smoothing: .inf\n");
  test::spit(d + "/epochs-text.yaml", test::replace_all(train_text, "epochs: 1", "epochs: three"));
  test::spit(d + "/batch-zero.yaml", test::replace_all(train_text, "batch_size: 64", "batch_size: 0"));
  test::spit(d + "/train-unknown.yaml",
             test::replace_all(train_text, "optimizer: {lr: 0.05}", "optimizer: {lr: 0.05, learning_rate: 0.1}"));
  for (const auto& f : {"/wrong-type.yaml", "/huge-width.yaml", "/negative-depth.yaml", "/empty-choices.yaml"})
    REQUIRE(test::slurp(d + f) != space_text);
  for (const auto& f : {"/nan-lr.yaml", "/epochs-text.yaml", "/batch-zero.yaml", "/train-unknown.yaml"})
    REQUIRE(test::slurp(d + f) != train_text);
  test::spit(d + "/outside.json",
             "{\"kind\":\"nas.arch\",\"schema_version\":1,\"space\":\"tiny-mbconv\",\"resolution\":30,\"stem_width\":8,"
             "\"head_width\":32,\"stages\":[{\"depth\":1,\"width\":8,\"blocks\":[{\"expand\":1,\"kernel\":3}]},"
             "{\"depth\":1,\"width\":12,\"blocks\":[{\"expand\":2,\"kernel\":3}]},"
             "{\"depth\":1,\"width\":16,\"blocks\":[{\"expand\":2,\"kernel\":3}]}]}");
  test::spit(
      d + "/other-space-arch.json",
      test::replace_all(test::replace_all(test::slurp(d + "/outside.json"), "\"resolution\":30", "\"resolution\":28"),
                        "\"space\":\"tiny-mbconv\"", "\"space\":\"other-space\""));
  test::spit(d + "/garbage.json", "{\"kind\": \"nas.arch\", \"schema_version\": 1, \"stages\": [\n");
  write_dataset(d + "/rgb", 20, 28, 28, 3, 9);
  write_dataset(d + "/size32", 20, 32, 32, 0, 9);
  write_dataset(d + "/labels12", 20, 28, 28, 0, 12);
  write_dataset(d + "/twenty", 20, 28, 28, 0, 9);
  write_dataset(d + "/mismatch", 20, 28, 28, 0, 9, 19);
  write_dataset(d + "/truncidx", 20, 28, 28, 0, 9);
  for (std::string split : {"train", "t10k"}) {
    std::string p = d + "/truncidx/" + split + "-images-idx3-ubyte";
    test::spit(p, test::slurp(p).substr(0, 5000));
  }
  {
    // A gzip test set whose pixels (282 MiB of zeros; 280 KiB compressed) are over
    // kSpillAboveBytes: inflated into a spill file under $TMPDIR.
    write_dataset(d + "/bigzip", 20, 28, 28, 0, 9);
    const int n = 360000;
    REQUIRE(size_t{n} * 784 > data::kSpillAboveBytes);
    const std::string images = d + "/bigzip/t10k-images-idx3-ubyte";
    std::remove(images.c_str());
    gzFile z = gzopen((images + ".gz").c_str(), "wb1");
    REQUIRE(z);
    std::string head = {0, 0, 8, 3};
    for (int32_t dim : {n, 28, 28})
      for (int sh = 24; sh >= 0; sh -= 8) head.push_back(static_cast<char>((dim >> sh) & 0xff));
    REQUIRE(gzwrite(z, head.data(), static_cast<unsigned>(head.size())) == static_cast<int>(head.size()));
    const std::vector<char> zeros(size_t{1} << 20, 0);
    for (size_t left = size_t{n} * 784; left > 0;) {
      const unsigned piece = static_cast<unsigned>(std::min(left, zeros.size()));
      REQUIRE(gzwrite(z, zeros.data(), piece) == static_cast<int>(piece));
      left -= piece;
    }
    REQUIRE(gzclose(z) == Z_OK);
    write_idx(d + "/bigzip/t10k-labels-idx1-ubyte", {n}, std::vector<uint8_t>(static_cast<size_t>(n), 1));
  }
  // A 64 KiB tmpfs (root only).
  const std::string full = d + "/full";
  ::mkdir(full.c_str(), 0755);
  const bool have_full = ::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=64k") == 0;
  const std::string nobody = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";

  for (const auto& row : rows) {
    if (row.cmd.find("{full}") != std::string::npos && !have_full) {
      WARN("row " << row.id << " (" << row.what << ") skipped: cannot mount a tmpfs here");
      continue;
    }
    const std::string out = d + "/out-" + std::to_string(row.id);
    std::string cmd = row.cmd;
    for (auto [k, val] : std::vector<std::pair<std::string, std::string>>{
             {"{nobody} ", nobody},
             {"{train}", test::bin("nas-train-supernet")},
             {"{search}", test::bin("nas-search")},
             {"{slice}", test::bin("nas-slice")},
             {"{bench}", test::bin("nas-benchmark")},
             {"{sn}", sn},
             {"{child}", child},
             {"{out}", out},
             {"{full}", full},
             {"{data}", test::src("tests/data")},
             {"{d}", d}})
      cmd = test::replace_all(cmd, k, val);
    const std::string message = test::replace_all(row.message, "{d}", d);
    INFO("row " << row.id << ": " << row.what << "\n" << cmd);
    auto res = test::run_cmd(cmd + " -q --threads 1");
    INFO(res.err);
    CHECK(res.code == row.code);
    CHECK_THAT(res.err, Catch::Matchers::Contains(message));
    CHECK(std::count(res.err.begin(), res.err.end(), '\n') == 1);  // one line
    CHECK_FALSE(test::exists(out));
  }
  {
    // Bad test data is refused before the model is timed: asked for two minutes of timing, the
    // benchmark still refuses within the time limit (before the fix it timed first and timeout
    // killed it: 124).
    INFO("nas-benchmark with bad data and --min-time 120");
    auto res =
        test::run_cmd("timeout " + test::seconds(20) + " " +
                      test::tool_line("nas-benchmark", {"--model", child, "--data", d + "/mismatch", "--min-time",
                                                        "120", "--max-time", "120", "-q", "--threads", "1"}));
    INFO(res.err);
    CHECK(res.code == 4);
    CHECK_THAT(res.err, Catch::Matchers::Contains("expected 20 labels"));
  }
  if (have_full) {
    CHECK(test::run_cmd("find " + full + " -name '*.tmp*'").out.empty());
    ::umount(full.c_str());
  }
  // No temporary files anywhere.
  CHECK(test::run_cmd("find " + d + " -name '*.tmp*'").out.empty());
  ::chmod((d + "/readonly").c_str(), 0755);
  ::chmod((d + "/secret.yaml").c_str(), 0644);
}

TEST_CASE("a NaN loss stops training with the last good checkpoint kept, or is skipped when configured", "[errors]") {
  std::string d = test::temp_dir("nan");
  const std::string train_text = test::slurp(test::test_data("tiny-train.yaml"));
  auto spec = [&](const std::string& extra) {
    std::string p = d + "/t" + std::to_string(std::hash<std::string>()(extra) % 100000) + ".yaml";
    test::spit(p, test::replace_all(train_text, "checkpoint_every_steps: 10", "checkpoint_every_steps: 2") + extra);
    return p;
  };
  const std::vector<std::string> base = {
      "--space", test::test_data("tiny-space.yaml"), "--train-limit", "640", "--threads", "2", "-q"};
  auto finite = [](const std::string& ckpt) {
    auto l = supernet::load_supernet(ckpt);
    for (const auto& p : l.net->parameters())
      if (!torch::isfinite(p).all().item<bool>()) return false;
    for (const auto& b : l.net->buffers())
      if (!torch::isfinite(b).all().item<bool>()) return false;
    return true;
  };
  // stop (the default): exit 1 at step 5; the checkpoint of step 4 stays.
  auto stop = test::run_cmd("NAS_FAULT_NAN_STEPS=5 " +
                            test::tool_line("nas-train-supernet", base, {"--train", spec(""), "--out", d + "/stop"}));
  CHECK(stop.code == 1);
  CHECK_THAT(stop.err, Catch::Matchers::Contains("training diverged at step 5 (loss max nan"));
  CHECK_THAT(stop.err, Catch::Matchers::Contains("the last good checkpoint is " + d + "/stop/supernet.ckpt"));
  CHECK(supernet::read_checkpoint_meta(d + "/stop/supernet.ckpt").step == 4);
  CHECK(finite(d + "/stop/supernet.ckpt"));
  // skip: steps 5 and 6 make no update, and the run ends with finite weights and BN statistics.
  auto skip = test::run_cmd("NAS_FAULT_NAN_STEPS=5,6 " +
                            test::tool_line("nas-train-supernet", base,
                                            {"--train", spec("on_nonfinite_loss: skip\n"), "--out", d + "/skip"}));
  INFO(skip.err);
  REQUIRE(skip.code == 0);
  auto summary = spec::json::parse(skip.out);
  CHECK(summary["skipped_steps"] == 2);
  CHECK(summary["steps"] == 10);
  CHECK_THAT(skip.err, Catch::Matchers::Contains("step 6: loss max nan"));
  CHECK(finite(d + "/skip/supernet.ckpt"));
  // A skipped step changes nothing: the checkpoints at steps 4 and 6 of a run that skips steps 4 and
  // 5 hold the same weights and BN statistics.
  auto pair =
      test::run_cmd("NAS_FAULT_NAN_STEPS=4,5 " + test::tool_line("nas-train-supernet", base,
                                                                 {"--train", spec("on_nonfinite_loss: skip\n"), "--out",
                                                                  d + "/pair", "--stop-after-steps", "4"}));
  REQUIRE(pair.code == 0);
  auto before = supernet::load_supernet(d + "/pair/supernet.ckpt");
  auto cont = test::run_cmd("NAS_FAULT_NAN_STEPS=4,5 " +
                            test::tool_line("nas-train-supernet", {"--out", d + "/pair", "--resume",
                                                                   "--stop-after-steps", "6", "--threads", "2", "-q"}));
  REQUIRE(cont.code == 0);
  auto after = supernet::load_supernet(d + "/pair/supernet.ckpt");
  CHECK(after.meta.step == 6);
  auto pa = before.net->named_parameters(), pb = after.net->named_parameters();
  for (const auto& it : pa) CHECK(torch::equal(it.value(), pb[it.key()]));
  auto ba = before.net->named_buffers(), bb = after.net->named_buffers();
  for (const auto& it : ba) CHECK(torch::equal(it.value(), bb[it.key()]));
  // The fault injection itself refuses a malformed value before any work.
  auto bad = test::run_cmd("NAS_FAULT_NAN_STEPS=5,x " +
                           test::tool_line("nas-train-supernet", base, {"--train", spec(""), "--out", d + "/bad"}));
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Matchers::Contains("NAS_FAULT_NAN_STEPS: expected comma-separated step numbers"));
  CHECK_FALSE(test::exists(d + "/bad"));
  // Too many in a row: stop.
  auto many = test::run_cmd(
      "NAS_FAULT_NAN_STEPS=2,3,4 " +
      test::tool_line("nas-train-supernet", base,
                      {"--train", spec("on_nonfinite_loss: skip\nmax_skipped_steps: 3\n"), "--out", d + "/many"}));
  CHECK(many.code == 1);
  CHECK_THAT(many.err, Catch::Matchers::Contains("3 steps in a row with a non-finite loss (max_skipped_steps)"));
  CHECK(finite(d + "/many/supernet.ckpt"));
}

TEST_CASE("inputs that scripts/fuzz.sh found stay refused with a clear error (tests/data/fuzz)", "[errors]") {
  // spec-*: a fuzz_spec input (a document). The others are fuzz_data inputs: the first byte chose
  // the reader (0 IDX, 1 CIFAR, 2 CSV), the rest is the file's content.
  std::string d = test::temp_dir("fuzzfound");
  auto r = test::run_cmd("ls " + test::src("tests/data/fuzz"));
  std::istringstream names(r.out);
  std::string name;
  int n = 0;
  while (std::getline(names, name)) {
    INFO(name);
    const std::string bytes = test::slurp(test::src("tests/data/fuzz/" + name));
    REQUIRE(!bytes.empty());
    if (name.rfind("spec-", 0) == 0) {
      CHECK_THAT(test::error_of([&] { spec::parse_document(bytes, "input.json"); }),
                 Catch::Matchers::Contains("input.json: invalid JSON"));
      ++n;
      continue;
    }
    test::spit(d + "/input", bytes.substr(1));
    const int mode = static_cast<uint8_t>(bytes[0]) % 3;
    std::string err = test::error_of([&] {
      if (mode == 0) {
        data::read_idx(d + "/input");
      } else if (mode == 1) {
        data::ImageSet set;
        data::read_cifar_file(d + "/input", 1, set);
      } else {
        data::CsvOptions o;
        o.label = "#0";
        o.header = false;
        data::load_csv(d + "/input", o, true);
      }
    });
    CHECK(err != "no error");
    CHECK_THAT(err, Catch::Matchers::Contains(d + "/input: "));
    ++n;
  }
  CHECK(n >= 3);
}
