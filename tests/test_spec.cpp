#include <map>
#include <string>
#include <vector>

#include "catch.h"
#include "core/error.h"
#include "families/documents.h"
#include "families/mbconv/mbconv.h"
#include "families/sampling.h"
#include "helpers.h"
#include "spec/arch.h"
#include "spec/bench_result.h"
#include "spec/document.h"
#include "spec/search_result.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"

using namespace nas;
using nas::spec::json;

namespace {
// Returns the SpecError message (and checks the exit code it maps to), or "" when none was thrown.
template <class F>
std::string spec_error(F&& f) {
  try {
    f();
  } catch (const SpecError& e) {
    CHECK(e.exit_code() == 3);
    return e.what();
  }
  return "";
}

const char* kSpaceYaml = R"(kind: nas.search_space
schema_version: 1
name: s
family: mbconv
resolution: [24, 28]
stem: {width: [8]}
stages:
  - {depth: [1, 2], width: [8, 16], expand: [3, 6], kernel: [3, 5], stride: 2}
head: {width: [32]}
)";

std::string with(const std::string& from, const std::string& to) {
  std::string s = kSpaceYaml;
  auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  return s.replace(pos, from.size(), to);
}
}  // namespace

TEST_CASE("search space YAML round-trips through canonical JSON", "[spec]") {
  auto s = families::load_search_space(test::src("configs/spaces/fmnist-mbconv.yaml"));
  CHECK(s.name == "fmnist-mbconv");
  CHECK(s.resolution == std::vector<int>{20, 24, 28});
  const auto& stages = families::mbconv::space_of(s).stages;
  REQUIRE(stages.size() == 4);
  CHECK(stages[2].kernel == std::vector<int>{3, 5, 7});
  CHECK(stages[1].expand == std::vector<int>{3, 4, 6});
  CHECK(stages[2].se);
  json j = spec::to_json(s);
  auto s2 = families::search_space_from_json(spec::parse_document(j.dump(), "rt.json"), "rt.json");
  CHECK(spec::to_json(s2) == j);
  // Choice sets come back sorted whatever the order in the file.
  auto s3 = families::search_space_from_json(spec::parse_document(with("[8, 16]", "[16, 8]"), "x.yaml"), "x.yaml");
  CHECK(families::mbconv::space_of(s3).stages[0].width == std::vector<int>{8, 16});
}

TEST_CASE("train spec round-trips and YAML equals JSON", "[spec]") {
  auto t = spec::load_train_spec(test::src("configs/train/fmnist.yaml"));
  CHECK(t.epochs > 0);
  CHECK(t.nesterov);
  CHECK(t.random_children == 2);
  json j = spec::to_json(t);
  auto t2 = spec::train_spec_from_json(spec::parse_document(j.dump(2), "t.json"), "t.json");
  CHECK(spec::to_json(t2) == j);
  // Defaults fill what a minimal document leaves out.
  auto t3 = spec::train_spec_from_json(
      spec::parse_document("kind: nas.train\nschema_version: 1\ndata: {}\nepochs: 2\nbatch_size: 8\noptimizer: {lr: 0.1}\n",
                           "m.yaml"),
      "m.yaml");
  CHECK(t3.label_smoothing == Approx(0.1));
  CHECK(t3.data.path == "/usr/share/datasets/fashion-mnist");
}

TEST_CASE("arch canonical form and hash are stable", "[spec]") {
  auto space = families::search_space_from_json(spec::parse_document(kSpaceYaml, "s.yaml"), "s.yaml");
  spec::Arch a = families::max_arch(space);
  json j = spec::to_json(a);
  CHECK(j.dump() ==
        R"({"head_width":32,"kind":"nas.arch","resolution":28,"schema_version":1,"space":"s","stages":[{"blocks":[{"expand":6,"kernel":5},{"expand":6,"kernel":5}],"depth":2,"width":16}],"stem_width":8})");
  // FNV-1a 64 of that exact text: a changed canonical form or hash function must fail here.
  CHECK(spec::arch_hash(a) == "d2d680e07e8d7646");
  spec::Arch b = families::arch_from_json(spec::parse_document(j.dump(4), "a.json"), "a.json");
  CHECK(b == a);
  CHECK(spec::arch_hash(b) == spec::arch_hash(a));
  spec::Arch m = families::min_arch(space);
  CHECK(spec::arch_hash(m) != spec::arch_hash(a));
  // Key order and whitespace do not matter.
  std::string reordered =
      R"({"stages":[{"width":16,"depth":2,"blocks":[{"kernel":5,"expand":6},{"kernel":5,"expand":6}]}],"stem_width":8,
          "space":"s","schema_version":1,"resolution":28,"kind":"nas.arch","head_width":32})";
  CHECK(spec::arch_hash(families::arch_from_json(json::parse(reordered), "r.json")) == spec::arch_hash(a));
}

TEST_CASE("search and bench results round-trip", "[spec]") {
  auto space = families::search_space_from_json(spec::parse_document(kSpaceYaml, "s.yaml"), "s.yaml");
  spec::SearchResult r;
  r.space = "s";
  r.supernet = "x.ckpt";
  r.strategy = "random";
  r.budget = 2;
  r.constraints.max_mflops = 3.5;
  for (int i = 0; i < 2; ++i) {
    spec::Candidate c;
    c.index = i;
    c.arch = i == 0 ? families::max_arch(space) : families::min_arch(space);
    c.hash = spec::arch_hash(c.arch);
    c.mflops = 3.0 - i;
    c.params = 1000 - i;
    c.evaluated = true;
    c.val_acc = 0.8 - 0.1 * i;
    c.estimator = "e";
    r.candidates.push_back(c);
  }
  r.best = 0;
  r.pareto = spec::pareto_front(r.candidates);
  json j = spec::to_json(r);
  auto r2 = families::search_result_from_json(json::parse(j.dump()), "r.json");
  CHECK(spec::to_json(r2) == j);
  CHECK(r2.pareto == std::vector<int>{1, 0});
  // A regression search scores R^2, which can be negative: it reads back.
  r.candidates[1].val_acc = -0.25;
  r.pareto = spec::pareto_front(r.candidates);
  CHECK(families::search_result_from_json(json::parse(spec::to_json(r).dump()), "r.json").candidates[1].val_acc == -0.25);

  spec::BenchResult b;
  b.context = {"h", "cpu", "cpu", "1.13", "0.1", "abc", "2026-01-01T00:00:00Z", 2, 2, "fp32", "0-1", "performance", 0.5, "glibc-tuned"};
  b.ci_low_ms = 1;
  b.ci_high_ms = 2;
  b.noisy = true;
  b.throughput = {{1, 100.0}, {8, 500.0}};
  b.source = "child";
  b.model_path = "c.ckpt";
  b.arch = families::min_arch(space);
  b.hash = spec::arch_hash(b.arch);
  b.reps = 5;
  b.throughput_batch = 8;
  b.test_images = 100;
  b.test_acc = 0.5;
  json bj = spec::to_json(b);
  CHECK(spec::to_json(families::bench_result_from_json(json::parse(bj.dump()), "b.json")) == bj);
  // A tampered hash is caught.
  bj["model"]["hash"] = "0000000000000000";
  CHECK_THAT(spec_error([&] { families::bench_result_from_json(bj, "b.json"); }),
             Catch::Matchers::Contains("b.json: model.hash: expected the hash of the arch"));
}

TEST_CASE("pareto front keeps only non-dominated candidates", "[spec]") {
  std::vector<spec::Candidate> c(5);
  double mf[] = {1, 2, 3, 4, 2.5};
  double acc[] = {0.5, 0.7, 0.65, 0.9, 0.8};
  for (int i = 0; i < 5; ++i) {
    c[i].index = i;
    c[i].mflops = mf[i];
    c[i].val_acc = acc[i];
    c[i].evaluated = true;
  }
  c[3].feasible = false;  // infeasible ones never count
  CHECK(spec::pareto_front(c) == std::vector<int>{0, 1, 4});
}

TEST_CASE("invalid documents give errors naming file, key, expectation and finding", "[spec]") {
  struct Bad {
    std::string doc, message;
  };
  std::vector<Bad> bad = {
      {with("head: {width: [32]}", "head: {width: [32]}\ncolour: red"), "bad.yaml: colour: unknown key"},
      {with("nas.search_space", "nas.train"), "bad.yaml: kind: expected nas.search_space, found string \"nas.train\""},
      {with("schema_version: 1", "schema_version: 99"), "bad.yaml: schema_version: version 99 is newer"},
      {with("name: s\n", ""), "bad.yaml: name: required key is missing"},
      {with("width: [8, 16]", "width: [-8, 16]"), "bad.yaml: stages[0].width: expected a non-empty list of distinct integers in [1, 4096], found list [-8,16]"},
      {with("width: [8, 16]", "width: [8, 1000000000]"), "bad.yaml: stages[0].width: expected a non-empty list"},
      {with("kernel: [3, 5]", "kernel: [3, 4]"), "bad.yaml: stages[0].kernel: expected odd kernel sizes"},
      {with("depth: [1, 2]", "depth: []"), "bad.yaml: stages[0].depth: expected a non-empty list"},
      {with("depth: [1, 2]", "depth: [2, 2]"), "bad.yaml: stages[0].depth: expected a non-empty list of distinct"},
      {with("stride: 2}", "stride: 2, colour: 1}"), "bad.yaml: stages[0].colour: unknown key"},
      {with("stride: 2}", "stride: 2, act: mish}"), "bad.yaml: stages[0].act: expected one of relu, relu6, hswish, swish, gelu, tanh, found string \"mish\""},
      {with("resolution: [24, 28]", "resolution: .nan"), "bad.yaml: resolution: expected a non-empty list of distinct integers in [8, 1024], found NaN"},
      {with("stages:", "stages: 3\nx:"), "bad.yaml: stages: expected a list of mappings, found 3"},
      {"kind: [unclosed", "bad.yaml: invalid YAML at line"},
      {"   \n", "bad.yaml: empty document"},
      {"{\"kind\": \"nas.search_space\"", "bad.yaml: invalid JSON"},
  };
  for (const auto& b : bad) {
    INFO(b.doc);
    std::string msg = spec_error([&] { families::search_space_from_json(spec::parse_document(b.doc, "bad.yaml"), "bad.yaml"); });
    CHECK_THAT(msg, Catch::Matchers::Contains(b.message));
    CHECK(msg.find('\n') == std::string::npos);  // one line
  }
}

TEST_CASE("JSON and YAML readers agree on duplicates, flow style and text encoding", "[spec]") {
  auto err = [](const std::string& doc, const std::string& file) {
    return spec_error([&] { families::search_space_from_json(spec::parse_document(doc, file), file); });
  };
  CHECK_THAT(err(R"({"kind": "nas.search_space", "kind": "nas.train"})", "d.json"),
             Catch::Matchers::Contains("d.json: kind: duplicate key"));
  CHECK_THAT(err("kind: nas.search_space\nkind: nas.train\n", "d.yaml"), Catch::Matchers::Contains("d.yaml: kind: duplicate key"));
  CHECK_THAT(err(R"({"kind": "nas.search_space",})", "t.json"), Catch::Matchers::Contains("t.json: invalid JSON"));
  // YAML flow style is YAML, not broken JSON.
  auto j = spec::parse_document("{kind: nas.arch, schema_version: 1}", "f.yaml");
  CHECK(j["kind"] == "nas.arch");
  CHECK(j["schema_version"] == 1);
  std::string latin1 = with("name: s", "name: caf\xe9");
  CHECK_THAT(err(latin1, "l.yaml"), Catch::Matchers::Contains("l.yaml: name: expected valid UTF-8 text"));
  // A nas.search whose kind is not even a string is a spec error, not a crash.
  std::string dir = test::temp_dir("kind");
  test::spit(dir + "/k.json", R"({"kind": 5, "schema_version": 1})");
  CHECK_THAT(spec_error([&] { families::load_arch(dir + "/k.json"); }), Catch::Matchers::Contains("k.json: kind: expected nas.arch, found 5"));
}

TEST_CASE("invalid train specs and archs are refused", "[spec]") {
  const std::string base = "kind: nas.train\nschema_version: 1\ndata: {}\nepochs: 2\nbatch_size: 8\n";
  auto err = [&](const std::string& doc) {
    return spec_error([&] { spec::train_spec_from_json(spec::parse_document(doc, "t.yaml"), "t.yaml"); });
  };
  CHECK_THAT(err(base + "optimizer: {lr: .nan}\n"),
             Catch::Matchers::Contains("t.yaml: optimizer.lr: expected a finite number in [1e-08, 100], found NaN"));
  CHECK_THAT(err(base + "optimizer: {lr: .inf}\n"), Catch::Matchers::Contains("found inf"));
  CHECK_THAT(err("kind: nas.train\nschema_version: 1\ndata: {}\nepochs: many\nbatch_size: 8\noptimizer: {lr: 0.1}\n"),
             Catch::Matchers::Contains("t.yaml: epochs: expected an integer in [1, 100000], found string \"many\""));
  CHECK_THAT(err(base + "optimizer: {lr: 0.1, momentum: 0, nesterov: true}\n"),
             Catch::Matchers::Contains("t.yaml: optimizer.momentum: expected a positive momentum when nesterov is true"));
  CHECK_THAT(err(base + "optimizer: {lr: 0.1}\ndata: {std: [0]}\n"), Catch::Matchers::Contains("duplicate key"));
  CHECK_THAT(err(base + "optimizer: {lr: 0.1}\nsandwich: {random_children: -1}\n"),
             Catch::Matchers::Contains("t.yaml: sandwich.random_children: expected an integer in [0, 64], found -1"));

  auto space = families::search_space_from_json(spec::parse_document(kSpaceYaml, "s.yaml"), "s.yaml");
  spec::Arch a = families::max_arch(space);
  families::edit<families::mbconv::Choices>(a).stages[0].blocks[1].kernel = 7;
  CHECK_THAT(spec_error([&] { families::validate_arch(a, space, "a.json"); }),
             Catch::Matchers::Contains(
                 "a.json: stages[0].blocks[1].kernel: expected one of [3, 5] (outside the search space), found 7"));
  a = families::max_arch(space);
  a.space = "other";
  CHECK_THAT(spec_error([&] { families::validate_arch(a, space, "a.json"); }), Catch::Matchers::Contains("a.json: space"));
  json j = spec::to_json(families::max_arch(space));
  j["stages"][0]["depth"] = 1;  // blocks list no longer matches
  CHECK_THAT(spec_error([&] { families::arch_from_json(j, "a.json"); }),
             Catch::Matchers::Contains("a.json: stages[0].blocks: expected a list of exactly depth=1 blocks"));
}

TEST_CASE("an arch of another family: one message per pair (12), and the reader an arch goes to", "[spec]") {
  const std::map<std::string, spec::SearchSpace> spaces = {
      {"mbconv", families::load_search_space(test::test_data("tiny-space.yaml"))},
      {"mlp", families::load_search_space(test::test_data("tiny-mlp.yaml"))},
      {"cell", families::load_search_space(test::test_data("tiny-cell.yaml"))},
      {"resnet", families::load_search_space(test::test_data("tiny-resnet.yaml"))}};
  const std::map<std::string, std::string> expected = {
      {"mbconv", "stages: expected stem_width, stages and head_width (the choices of an mbconv child)"},
      {"mlp", "layers: expected the hidden layers of an mlp child"},
      {"cell", "cell: expected the normal and reduction cells of a cell child"},
      {"resnet", "width_mult: expected width_mult and stages (the choices of a resnet child)"}};
  for (const auto& [space_family, space] : spaces)
    for (const auto& [arch_family, arch_space] : spaces) {
      if (space_family == arch_family) continue;
      spec::Arch a = families::max_arch(arch_space);
      a.space = space.name;
      a.resolution = space.resolution.front();
      INFO(space_family << " space, " << arch_family << " arch");
      CHECK_THAT(spec_error([&] { families::validate_arch(a, space, "a.json"); }),
                 Catch::Matchers::Contains("a.json: " + expected.at(space_family) + ", found the choices of family " +
                                           arch_family));
    }
  // A family's part asked of another family's space names both.
  CHECK_THROWS_WITH(families::mbconv::space_of(spaces.at("mlp")),
                    Catch::Matchers::Contains("expected family mbconv's part, found family mlp's"));
  // An arch document does not name its family: layers make it mlp's, a cell cell's, else mbconv's
  // (a null key counts as absent, as everywhere in the reader).
  json j = spec::to_json(families::max_arch(spaces.at("mlp")));
  j["stem_width"] = 8;
  CHECK_THAT(spec_error([&] { families::arch_from_json(j, "a.json"); }), Catch::Matchers::Contains("stem_width"));
  j.erase("stem_width");
  CHECK(families::arch_from_json(j, "a.json").family() == "mlp");
  j["cell"] = nullptr;  // read by mlp, which knows no key "cell"
  CHECK_THAT(spec_error([&] { families::arch_from_json(j, "a.json"); }),
             Catch::Matchers::Contains("a.json: cell: unknown key"));
  j.erase("layers");
  CHECK_THAT(spec_error([&] { families::arch_from_json(j, "a.json"); }),
             Catch::Matchers::Contains("a.json: stem_width"));
}
