// Latency measurement and latency tables (nas.lut).
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "catch.h"
#include "core/error.h"
#include "core/rng.h"
#include "eval/benchmark.h"
#include "eval/memory.h"
#include "export/onnx_export.h"
#include "families/documents.h"
#include "families/family.h"
#include "families/modules.h"
#include "families/sampling.h"
#include "helpers.h"
#include "spec/bench_result.h"
#include "spec/search_result.h"
#include "spec/search_space.h"
#include "supernet/latency_table.h"
#include "supernet_helpers.h"

using namespace nas;
using nlohmann::json;

namespace {
spec::SearchSpace tiny() { return families::load_search_space(test::test_data("tiny-space.yaml")); }
spec::SearchSpace fmnist() { return families::load_search_space(test::src("configs/spaces/fmnist-mbconv.yaml")); }

void busy_ms(double ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(ms * 1000));
  while (std::chrono::steady_clock::now() < end) {
  }
}

using test::error_of;
}  // namespace

TEST_CASE("the median's confidence interval and the noisy flag", "[latency]") {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  auto s = eval::summarize(v);
  CHECK(s.median_ms == 50.5);
  CHECK(s.ci_low_ms == 40);   // rank floor(50 - 9.8) = 40
  CHECK(s.ci_high_ms == 61);  // rank ceil(51 + 9.8) = 61
  CHECK_FALSE(eval::within(s, 0.02));
  CHECK(eval::within(s, 0.25));
  // Bimodal run times (0.05 ms and 1 ms alternating): the median's interval spans both modes and
  // never narrows to +-2%, so the time cap ends it and flags it.
  eval::TimingOptions o;
  o.warmup = 2;
  o.max_seconds = 0.3;
  int i = 0;
  auto st = eval::measure([&] { busy_ms(++i % 2 ? 0.05 : 1.0); }, o);
  CHECK(st.noisy);
  CHECK(st.seconds >= 0.3);
  CHECK(st.reps > 10);
  // Steady run times: stops as soon as the interval is narrow enough, well before the cap.
  o.ci = 0.5;
  o.max_seconds = 5;
  auto steady = eval::measure([&] { busy_ms(0.2); }, o);
  CHECK_FALSE(steady.noisy);
  CHECK(steady.seconds < 5);
}

TEST_CASE("table enumeration covers every operator of 100 random archs, with no missing key", "[latency]") {
  for (const auto& s : {tiny(), fmnist()}) {
    INFO(s.name);
    std::set<std::string> keys;
    for (const auto& op : supernet::space_ops(s, 1, 10)) CHECK(keys.insert(op.key).second);  // distinct
    Rng rng(5);
    std::vector<spec::Arch> archs = {families::max_arch(s), families::min_arch(s)};
    for (int i = 0; i < 100; ++i) archs.push_back(families::random_arch(s, rng));
    std::set<std::string> used;
    for (const auto& a : archs)
      for (const auto& op : supernet::arch_ops(s, a, 1, 10)) {
        INFO(op.key);
        CHECK(keys.count(op.key) == 1);
        used.insert(op.key);
      }
    // And nothing the space cannot produce: 2000 more random children reach every entry.
    for (int i = 0; i < 2000; ++i)
      for (const auto& op : supernet::arch_ops(s, families::random_arch(s, rng), 1, 10)) used.insert(op.key);
    CHECK(used.size() == keys.size());
  }
}

TEST_CASE("a synthetic table predicts the hand sum; bad tables give clear errors", "[latency]") {
  auto s = tiny();
  supernet::LatencyTable t;
  t.space = s.name;
  t.space_hash = supernet::space_hash(s);
  t.context = {"host", "test CPU", "cpu", "1.13", "gcc", "abc", "2026-11-28T00:00:00Z", 2, 2, "fp32", "", "", -1, ""};
  t.context.threads = 2;
  t.context.cpu_count = 2;
  t.context.device = "cpu";
  for (const auto& op : supernet::space_ops(s, 1, 10))
    t.ops[op.key] = {op.kind == "stem" ? 10.0 : op.kind == "head" ? 100.0 : 1.0, 2.0, 10, false};
  t.overhead_ms = 0.5;
  // min: a stem, one block in each of the 3 stages, a head; max: 2 blocks per stage.
  CHECK(t.predict_ms(s, families::min_arch(s)) == 10 + 3 * 1 + 100 + 0.5);
  CHECK(t.predict_ms(s, families::max_arch(s)) == 10 + 6 * 1 + 100 + 0.5);
  // Through JSON.
  auto back = supernet::latency_table_from_json(supernet::to_json(t), "lut.json");
  CHECK(back.predict_ms(s, families::max_arch(s)) == 116.5);
  CHECK(supernet::to_json(back) == supernet::to_json(t));
  // The learned model's features: the sum, the stem, the head, each stage, then the counts.
  CHECK(supernet::latency_feature_names(s) == std::vector<std::string>{"sum_ms", "stem_ms", "head_ms", "stage0_ms",
                                                                       "stage1_ms", "stage2_ms", "blocks", "mflops",
                                                                       "kilo_activations", "kilo_params", "one"});
  {
    const auto max = families::max_arch(s);
    const auto f = supernet::latency_features(t, s, max, "t");
    const auto c = families::arch_cost(s, max, 1, 10);
    REQUIRE(f.size() == 11);
    CHECK(std::vector<double>(f.begin(), f.begin() + 7) == std::vector<double>{116, 10, 100, 2, 2, 2, 6});
    CHECK(f[7] == c.mflops());
    CHECK(f[9] == static_cast<double>(c.params) / 1000.0);
    CHECK(f[10] == 1.0);
    // The sum's order: the stem and the head, then the blocks (as tables' models were fitted). With
    // a head of 2^53, each 1 added after it is lost to rounding; added before it, they would count.
    supernet::LatencyTable big = t;
    for (const auto& op : supernet::space_ops(s, 1, 10))
      big.ops[op.key].median_ms = op.kind == "head" ? 9007199254740992.0 : 1.0;
    CHECK(supernet::latency_features(big, s, max, "t")[0] == 9007199254740992.0);
  }
  // The learned model: exact on data made by a linear rule of its features.
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  Rng rng(3);
  for (int i = 0; i < 40; ++i) {
    auto a = families::random_arch(s, rng);
    auto f = supernet::latency_features(t, s, a, "t");
    x.push_back(f);
    y.push_back(1.5 * f[0] + 0.02 * f[f.size() - 2] + 0.3);
  }
  t.model = supernet::fit_latency_model(supernet::latency_feature_names(s), x, y);
  CHECK(t.model.fit_mape < 0.01);
  auto a = families::random_arch(s, rng);
  auto f = supernet::latency_features(t, s, a, "t");
  CHECK(t.model_ms(s, a) == Approx(1.5 * f[0] + 0.02 * f[f.size() - 2] + 0.3).epsilon(0.01));
  // Two children measured in a slow spell (3x): the fit minimizes absolute relative errors, so
  // they do not pull it off the others (least squares on relative errors misses by 5% here).
  y[5] *= 3;
  y[17] *= 3;
  auto robust = supernet::fit_latency_model(supernet::latency_feature_names(s), x, y);
  for (size_t j = 0; j < robust.weights.size(); ++j) t.model.weights[j] = robust.weights[j];
  CHECK(t.model_ms(s, a) == Approx(1.5 * f[0] + 0.02 * f[f.size() - 2] + 0.3).epsilon(0.01));
  CHECK(robust.fit_mape == Approx(2.0 * 2.0 / 3.0 / 40.0).epsilon(0.05));  // the two outliers' own 67%
  // Another space's table.
  CHECK_THAT(error_of([&] { supernet::check_table_for(t, fmnist(), 1, 10, "lut.json"); }),
             Catch::Matchers::Contains("lut.json: space_hash: expected a table for space \"fmnist-mbconv\""));
  CHECK_THAT(error_of([&] { supernet::check_table_for(t, s, 3, 10, "lut.json"); }),
             Catch::Matchers::Contains("input_channels, classes: expected 3 and 10"));
  // A missing operator.
  t.ops.erase(supernet::arch_ops(s, families::max_arch(s), 1, 10)[2].key);
  CHECK_THAT(error_of([&] { t.predict_ms(s, families::max_arch(s), "lut.json"); }),
             Catch::Matchers::Contains("lut.json: ops: expected an entry for operator block/"));
  // Corrupted files.
  std::string d = test::temp_dir("lut");
  std::string text = spec::canonical_dump(supernet::to_json(back));
  test::spit(d + "/cut.json", text.substr(0, text.size() / 2));
  CHECK_THAT(error_of([&] { supernet::load_latency_table(d + "/cut.json"); }), Catch::Matchers::Contains("cut.json"));
  json j = supernet::to_json(back);
  j["ops"].begin().value()["median_ms"] = "fast";
  CHECK_THAT(error_of([&] { supernet::latency_table_from_json(j, "bad.json"); }),
             Catch::Matchers::Contains("bad.json: ops."));
  j = supernet::to_json(back);
  j["kind"] = "nas.bench";
  CHECK_THAT(error_of([&] { supernet::latency_table_from_json(j, "k.json"); }), Catch::Matchers::Contains("nas.lut"));
}

TEST_CASE("context differences name what changes latency", "[latency]") {
  spec::BenchContext a, b;
  a.cpu = b.cpu = "X";
  a.threads = b.threads = 2;
  a.libtorch = b.libtorch = "2.1";
  a.host = "one";
  b.host = "two";  // the host alone does not change latency
  CHECK(spec::context_differences(a, b).empty());
  b.threads = 1;
  b.cpu = "Y";
  auto d = spec::context_differences(a, b);
  REQUIRE(d.size() == 2);
  CHECK(d[0] == "cpu: X there, Y here");
  CHECK(d[1] == "threads: 2 there, 1 here");
  // The malloc setting changes latency too (docs/PERFORMANCE.md); older files have none.
  b = a;
  a.allocator = "glibc-tuned";
  b.allocator = "glibc";
  REQUIRE(spec::context_differences(a, b).size() == 1);
  CHECK(spec::context_differences(a, b)[0] == "allocator: glibc-tuned there, glibc here");
  a.allocator = "";
  CHECK(spec::context_differences(a, b).empty());
}

TEST_CASE("nas-benchmark --build-lut and nas-search --latency-table", "[latency]") {
  std::string d = test::temp_dir("lut-tool");
  auto r = test::tool("nas-benchmark", {"--build-lut",
                                        "--space",
                                        test::test_data("tiny-space.yaml"),
                                        "--threads",
                                        "1",
                                        "--op-max-time",
                                        test::seconds(0.02),
                                        "--warmup",
                                        "2",
                                        "--reps",
                                        "5",
                                        "--calib-archs",
                                        "4",
                                        "--model-archs",
                                        "12",
                                        "--max-time",
                                        "0.2",
                                        "--rounds",
                                        "2",
                                        "--out",
                                        d + "/lut.json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto t = supernet::load_latency_table(d + "/lut.json");
  auto s = tiny();
  CHECK(t.ops.size() == supernet::space_ops(s, 1, 10).size());
  CHECK(t.calibration_archs == 6);
  CHECK(t.model.archs == 18);
  CHECK(t.context.threads == 1);
  CHECK(t.rounds == 2);
  for (const auto& [key, op] : t.ops) CHECK(op.reps >= 5);  // --op-max-time scales with kSlowdown
#if defined(__GLIBC__)
  if (!test::kSanitized) CHECK(t.context.allocator == "glibc-tuned");  // (AddressSanitizer's allocator ignores mallopt)
#endif
  CHECK(t.predict_ms(s, families::max_arch(s)) > t.predict_ms(s, families::min_arch(s)));
  // A search bounded by the table's predictions: every feasible candidate's recorded latency is
  // the table's, and within the bound.
  const double bound = 0.5 * (t.predict_ms(s, families::max_arch(s)) + t.predict_ms(s, families::min_arch(s)));
  test::spit(d + "/eval.sh", "echo '{\"accuracy\": 0.5}'\n");
  const std::vector<std::string> search = {"--space",          test::test_data("tiny-space.yaml"),
                                           "--evaluator",      "sh " + d + "/eval.sh",
                                           "--budget",         "10",
                                           "--strategy",       "random",
                                           "--threads",        "1",
                                           "--max-latency-ms", std::to_string(bound)};
  auto rs = test::tool("nas-search", search, {"--latency-table", d + "/lut.json", "--out", d + "/s.json"});
  INFO(rs.err);
  REQUIRE(rs.code == 0);
  CHECK(rs.err.find("another context") == std::string::npos);
  auto sr = families::load_search_result(d + "/s.json");
  int feasible = 0;
  for (const auto& c : sr.candidates) {
    if (c.latency_ms < 0) continue;  // over an analytic bound: not predicted
    CHECK(c.latency_ms == Approx(t.predict_ms(s, c.arch)));
    CHECK(c.feasible == (c.latency_ms <= bound));
    feasible += c.feasible;
  }
  CHECK(feasible == 10);
  // The learned model instead of the sum.
  auto rm =
      test::tool("nas-search", search, {"--latency-table", d + "/lut.json", "--latency-model", "--out", d + "/m.json"});
  INFO(rm.err);
  REQUIRE(rm.code == 0);
  auto mr = families::load_search_result(d + "/m.json");
  CHECK(mr.candidates[0].latency_ms == Approx(t.model_ms(s, mr.candidates[0].arch)));
  // A table from another machine: a warning naming what differs.
  json j = json::parse(test::slurp(d + "/lut.json"));
  j["context"]["cpu"] = "Some Other CPU";
  test::spit(d + "/other.json", j.dump());
  auto ro = test::tool("nas-search", search, {"--latency-table", d + "/other.json", "--out", d + "/o.json"});
  CHECK(ro.code == 0);
  CHECK_THAT(ro.err, Catch::Matchers::Contains("other.json: built in another context (cpu: Some Other CPU there"));
  // A table for another space, and a corrupted one: clear errors, no output.
  j = json::parse(test::slurp(d + "/lut.json"));
  j["space_hash"] = "0123456789abcdef";
  test::spit(d + "/space.json", j.dump());
  auto rx = test::tool("nas-search", search, {"--latency-table", d + "/space.json", "--out", d + "/x.json"});
  CHECK(rx.code != 0);
  CHECK_THAT(rx.err, Catch::Matchers::Contains("space.json: space_hash: expected a table for space \"tiny-mbconv\""));
  test::spit(d + "/cut.json", test::slurp(d + "/lut.json").substr(0, 300));
  auto rc = test::tool("nas-search", search, {"--latency-table", d + "/cut.json", "--out", d + "/x.json"});
  CHECK(rc.code != 0);
  CHECK_THAT(rc.err, Catch::Matchers::Contains("cut.json"));
  CHECK_FALSE(test::exists(d + "/x.json"));
}

TEST_CASE("analytic peak activation memory agrees with the measured peak of an inference", "[latency]") {
  auto s = fmnist();
  Rng rng(8);
  std::vector<spec::Arch> archs = {families::max_arch(s), families::min_arch(s)};
  for (int i = 0; i < 10; ++i) archs.push_back(families::random_arch(s, rng));
  test::check_peak_activations(s, archs);
}
