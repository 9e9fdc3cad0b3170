#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "app/apps.h"
#include "catch.h"
#include "data/idx.h"
#include "dist/dist.h"
#include "eval/lut.h"
#include "export/onnx_export.h"
#include "families/documents.h"
#include "helpers.h"
#include "search/estimators.h"
#include "search/search.h"
#include "spec/arch.h"
#include "spec/bench_result.h"
#include "spec/search_result.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

using namespace nas;
using nlohmann::json;

namespace {
// One small pipeline shared by the tests below: a supernet trained on a 2000-image slice.
struct Pipeline {
  std::string dir;
  std::string ckpt;
  Pipeline() {
    dir = test::temp_dir("tools");
    ckpt = dir + "/run/supernet.ckpt";
    auto r = test::tool("nas-train-supernet",
                        {"--space", test::test_data("tiny-space.yaml"), "--train", test::test_data("tiny-train.yaml"),
                         "--out", dir + "/run", "--train-limit", "2000", "--epochs", "1", "--threads", "2"});
    INFO(r.err);
    REQUIRE(r.code == 0);
  }
};
Pipeline& pipeline() {
  static Pipeline p;
  return p;
}
std::string q(const std::string& s) { return "'" + s + "'"; }

// `cmd` is refused as bad usage (exit 2) with `message` on stderr.
void refused(const std::string& cmd, const std::string& message) {
  auto r = test::run_cmd(cmd);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Matchers::Contains(message));
}

}  // namespace

TEST_CASE("the four tools run end to end on a 2k-image slice and write valid documents", "[tool]") {
  auto& p = pipeline();
  REQUIRE(test::exists(p.ckpt));
  // metrics: one JSON object per line with the documented fields.
  std::istringstream metrics(test::slurp(p.dir + "/run/metrics.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    json m = json::parse(line);
    CHECK(m.contains("step"));
    CHECK(m.contains("loss_max"));
    CHECK(m.contains("loss_min"));
    CHECK(m.contains("lr"));
    CHECK(m["images_per_s"].get<double>() > 0);
    ++lines;
  }
  CHECK(lines >= 5);  // 31 steps, a line every 5

  const std::string search = p.dir + "/search.json";
  auto rs = test::tool("nas-search", {"--supernet", p.ckpt, "--budget", "6", "--val-images", "300", "--max-mflops",
                                      "1.5", "--out", search, "--csv", p.dir + "/pareto.csv", "--best-arch",
                                      p.dir + "/best.json", "--threads", "2", "--metrics", p.dir + "/search.jsonl"});
  INFO(rs.err);
  REQUIRE(rs.code == 0);
  auto sr = families::load_search_result(search);
  CHECK(sr.strategy == "coarse-to-fine");
  CHECK(sr.val_images == 300);
  REQUIRE(sr.best >= 0);
  int evaluated = 0;
  for (const auto& c : sr.candidates) evaluated += c.evaluated;
  CHECK(evaluated == 6);
  CHECK(sr.candidates[sr.best].mflops <= 1.5);
  // 31 steps leave the supernet barely trained: how far its children are above chance (0.1) is up
  // to the BLAS kernel's rounding, so no accuracy bar. Asserted: each score is a count over the 300
  // images asked for, and the best is the most accurate child evaluated within the bound.
  for (const auto& c : sr.candidates) {
    if (!c.evaluated) continue;
    CHECK((c.val_acc >= 0 && c.val_acc <= 1));
    CHECK(c.val_acc * 300 == Approx(std::round(c.val_acc * 300)).margin(1e-6));
    if (c.feasible) CHECK(c.val_acc <= sr.candidates[sr.best].val_acc);
  }
  CHECK(families::load_arch(p.dir + "/best.json") == sr.candidates[sr.best].arch);
  {
    std::istringstream sm(test::slurp(p.dir + "/search.jsonl"));
    int n = 0;
    while (std::getline(sm, line)) {
      json m = json::parse(line);
      CHECK(sr.candidates.at(m["index"].get<int>()).hash == m["hash"]);
      ++n;
    }
    CHECK(n == 6);  // one line per evaluation
  }
  std::string csv = test::slurp(p.dir + "/pareto.csv");
  CHECK(csv.rfind("index,hash,feasible,evaluated,mflops,params,val_acc,val_loss,origin,pareto,error\n", 0) == 0);

  const std::string child = p.dir + "/child.ckpt";
  std::vector<std::string> slice_args = {"--supernet", p.ckpt, "--arch",     search,
                                         "--out",      child,  "--arch-out", p.dir + "/child-arch.json"};
  if (exporter::onnx_available()) slice_args.insert(slice_args.end(), {"--onnx", p.dir + "/child.onnx"});
  auto rc = test::tool("nas-slice", slice_args);
  INFO(rc.err);
  REQUIRE(rc.code == 0);
  CHECK(families::load_arch(p.dir + "/child-arch.json") == sr.candidates[sr.best].arch);
  if (exporter::onnx_available()) CHECK(test::slurp(p.dir + "/child.onnx").size() > 1000);
  CHECK(json::parse(rc.out)["hash"] == sr.candidates[sr.best].hash);

  // Pinned to the first CPU this process may use (CPU 0 may be outside a container's cpuset).
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  int first = 0;
  while (!CPU_ISSET(first, &allowed)) ++first;
  auto rb = test::tool("nas-benchmark", {"--model",
                                         child,
                                         "--reps",
                                         "3",
                                         "--warmup",
                                         "1",
                                         "--min-time",
                                         "0",
                                         "--ci",
                                         "0.1",
                                         "--max-time",
                                         "2",
                                         "--throughput-batch",
                                         "16,1",
                                         "--pin-cpus",
                                         std::to_string(first),
                                         "--test-images",
                                         "500",
                                         "--threads",
                                         "1",
                                         "--out",
                                         p.dir + "/bench.json"});
  INFO(rb.err);
  REQUIRE(rb.code == 0);
  auto b = families::load_bench_result(p.dir + "/bench.json");
  CHECK(b.source == "child");
  CHECK(b.hash == sr.candidates[sr.best].hash);
  CHECK(b.params == sr.candidates[sr.best].params);
  CHECK(b.reps >= 3);
  CHECK(b.median_ms > 0);
  CHECK(b.p90_ms >= b.median_ms);
  CHECK(b.images_per_s > 0);
  CHECK(b.peak_rss_mib > 10);
  CHECK(b.context.threads == 1);
  CHECK(b.context.cpu_affinity == std::to_string(first));  // --pin-cpus
  CHECK(b.activations_peak_mib > 0);
  CHECK(b.activations_peak_mib < 1.5 * b.analytic_mib);  // see "analytic peak activation memory"
  CHECK(b.ci_low_ms <= b.median_ms);
  CHECK(b.ci_high_ms >= b.median_ms);
  CHECK(b.ci_target == 0.1);
  // Unless noisy, the median is known within +-10%.
  CHECK((b.noisy || (b.median_ms - b.ci_low_ms <= 0.1 * b.median_ms && b.ci_high_ms - b.median_ms <= 0.1 * b.median_ms)));
  REQUIRE(b.throughput.size() == 2);
  CHECK(b.throughput[0].batch == 1);
  CHECK(b.throughput[1].batch == 16);
  CHECK(b.throughput_batch == 16);
  CHECK(b.test_images == 500);
  // Barely trained: no accuracy bar (see the search's above). The 500 images scored as this test
  // scores them (one image of slack).
  CHECK(b.test_acc ==
        Approx(test::child_top1(child, data::load_mnist_dir(test::kFmnist, false), 500)).margin(1.0 / 500));

  // Supernet + arch gives the same accuracy as the sliced child (same calibration subset).
  auto rb2 =
      test::tool("nas-benchmark", {"--supernet", p.ckpt, "--arch", p.dir + "/best.json", "--reps", "2", "--warmup", "0",
                                   "--min-time", "0", "--ci", "0", "--throughput-batch", "8", "--test-images", "500"});
  INFO(rb2.err);
  REQUIRE(rb2.code == 0);
  auto b2 = families::bench_result_from_json(json::parse(rb2.out), "stdout");
  CHECK(b2.source == "supernet");
  CHECK(b2.test_acc == Approx(b.test_acc).margin(0.003));
}

TEST_CASE("nas-search with zero-cost proxies: as the estimator, and as the prescreen", "[tool]") {
  auto& p = pipeline();
  const std::string d = test::temp_dir("proxies");
  const std::vector<std::string> search_args = {"--supernet", p.ckpt, "--threads", "1", "-q"};
  std::vector<std::string> base = search_args;
  base.insert(base.end(), {"--strategy", "random"});
  auto z = test::tool(
      "nas-search", base,
      {"--estimator", "zero-cost", "--proxy", "snip", "--proxy-batch", "16", "--budget", "4", "--out", d + "/z.json"});
  INFO(z.err);
  REQUIRE(z.code == 0);
  auto zr = families::load_search_result(d + "/z.json");  // proxy values are no accuracies, and read back
  REQUIRE(zr.candidates.size() == 4);
  for (const auto& c : zr.candidates) {
    CHECK(c.estimator == "zero_cost_snip");
    CHECK(c.estimator_detail == "snip on inherited weights");
    CHECK(c.val_acc > 0);
  }
  CHECK(zr.estimator_options["proxy_weights"] == "inherited");
  // The images the proxies' batch is drawn from, recorded as before the estimators shared their
  // data (the whole training split), so that stopped zero-cost searches still resume.
  CHECK(zr.calib_images > zr.val_images);
  // Screened by synflow after 10 evaluations: those below the median proxy cost no evaluation.
  auto s = test::tool("nas-search", base,
                      {"--prescreen", "--proxy", "synflow", "--proxy-weights", "init", "--budget", "14", "--val-images",
                       "100", "--out", d + "/s.json"});
  INFO(s.err);
  REQUIRE(s.code == 0);
  auto sr = families::load_search_result(d + "/s.json");
  int screened = 0, evaluated = 0;
  for (const auto& c : sr.candidates) {
    screened += c.screened;
    evaluated += c.evaluated;
    if (c.screened) CHECK(c.estimator == "zero_cost_synflow");
  }
  CHECK(evaluated == 14);
  CHECK(screened > 0);
  CHECK(sr.strategy_options["prescreen_proxy"] == "zero_cost_synflow");
  // Hyperband over epochs of low-fidelity training: 2 children for 1 epoch, the better for 2.
  auto h = test::tool("nas-search", search_args,
                      {"--strategy", "hyperband", "--estimator", "low-fidelity", "--hb-max-epochs", "2", "--hb-eta",
                       "2", "--lf-images", "128", "--val-images", "100", "--budget", "3", "--out", d + "/h.json"});
  INFO(h.err);
  REQUIRE(h.code == 0);
  auto hr = families::load_search_result(d + "/h.json");
  REQUIRE(hr.candidates.size() == 3);
  CHECK(hr.candidates[0].fidelity == 1);
  CHECK(hr.candidates[2].fidelity == 2);
  CHECK(hr.best == 2);
  refused(
      test::tool_line("nas-search", search_args, {"--strategy", "hyperband", "--budget", "3", "--out", d + "/x.json"}),
      "give --estimator low-fidelity");
  refused(test::tool_line("nas-search", base, {"--proxy", "nwot", "--budget", "2", "--out", d + "/x.json"}),
          "--proxy: give --estimator zero-cost or --prescreen too");
  refused(test::tool_line("nas-search", base,
                          {"--estimator", "zero-cost", "--proxy", "flops", "--budget", "2", "--out", d + "/x.json"}),
          "--proxy: expected one of synflow, grad-norm, snip, jacov, nwot");
  CHECK_FALSE(test::exists(d + "/x.json"));
}

TEST_CASE("tools called as library functions match the binaries", "[tool]") {
  auto& p = pipeline();
  app::SearchToolOptions o;
  o.supernet = p.ckpt;
  o.strategy = "random";
  o.budget = 3;
  o.val_images = 200;
  o.common.threads = 2;
  o.common.quiet = true;
  o.out = p.dir + "/lib-search.json";
  app::run_search_tool(o);
  auto lib = families::load_search_result(o.out);
  auto r = test::tool("nas-search", {"--supernet", p.ckpt, "--strategy", "random", "--budget", "3", "--val-images",
                                     "200", "--threads", "2", "-q"});
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());  // -q: nothing on stderr
  auto bin = families::search_result_from_json(json::parse(r.out), "stdout");
  REQUIRE(bin.candidates.size() == lib.candidates.size());
  for (size_t i = 0; i < lib.candidates.size(); ++i) {
    CHECK(bin.candidates[i].hash == lib.candidates[i].hash);
    CHECK(bin.candidates[i].val_acc == Approx(lib.candidates[i].val_acc).margin(1e-9));
  }
}

TEST_CASE("bad input: exit codes, one-line errors, no output left behind", "[tool]") {
  auto& p = pipeline();
  std::string d = test::temp_dir("bad");
  struct Case {
    std::string tool;
    std::vector<std::string> args;
    int code;
    std::string message;
    std::string must_not_exist;
  };
  test::spit(d + "/bad-space.yaml", "kind: nas.search_space\nschema_version: 1\nname: x\nfamily: mbconv\n"
                                     "resolution: [28]\nstem: {width: [8]}\nstages: []\nhead: {width: [8]}\n");
  test::spit(d + "/outside.json",
             "{\"kind\":\"nas.arch\",\"schema_version\":1,\"space\":\"tiny-mbconv\",\"resolution\":30,\"stem_width\":8,"
             "\"head_width\":32,\"stages\":[{\"depth\":1,\"width\":8,\"blocks\":[{\"expand\":1,\"kernel\":3}]},"
             "{\"depth\":1,\"width\":12,\"blocks\":[{\"expand\":2,\"kernel\":3}]},"
             "{\"depth\":1,\"width\":16,\"blocks\":[{\"expand\":2,\"kernel\":3}]}]}");
  test::spit(d + "/corrupt.ckpt", test::slurp(p.ckpt).substr(0, 5000));
  std::vector<Case> cases = {
      {"nas-search",
       {"--supernet", p.ckpt, "--nope"},
       2,
       "nas-search: error: The following argument was not expected: --nope",
       ""},
      {"nas-slice", {"--supernet", p.ckpt, "--arch", "x.json"}, 2, "nas-slice: error: --out is required", ""},
      {"nas-search", {"--supernet", p.ckpt, "--budget", "0"}, 2, "--budget", ""},
      {"nas-benchmark", {"--model", "a.ckpt", "--supernet", "b.ckpt"}, 2, "nas-benchmark: error:", ""},
      {"nas-train-supernet", {"--train", test::test_data("tiny-train.yaml")}, 2, "--space is required", ""},
      {"nas-train-supernet",
       {"--out", p.dir + "/run", "--resume", "--epochs", "3"},
       2,
       "--resume continues the checkpoint's own run",
       ""},
      {"nas-train-supernet", {"--out", p.dir + "/run", "--resume"}, 2, "training already finished", ""},
      {"nas-benchmark",
       {"--model", p.ckpt, "--precision", "fp16"},
       2,
       "nas-benchmark: error: --precision: fp16 not in {fp32,bf16}",
       ""},
      {"nas-search",
       {"--supernet", p.ckpt, "--precision", "bf16"},
       2,
       "--precision bf16: autocast to bfloat16 needs --device cuda",
       ""},
      {"nas-train-supernet",
       {"--space", d + "/bad-space.yaml", "--train", test::test_data("tiny-train.yaml"), "--out", d + "/run1"},
       3,
       "bad-space.yaml: stages: expected a list of 1 to 16 stages",
       d + "/run1"},
      {"nas-train-supernet",
       {"--space", test::test_data("tiny-space.yaml"), "--train", test::test_data("tiny-train.yaml"), "--data", d,
        "--out", d + "/run2"},
       4,
       "train-images-idx3-ubyte.gz: cannot open",
       d + "/run2"},
      {"nas-slice",
       {"--supernet", p.ckpt, "--arch", d + "/outside.json", "--out", d + "/c.ckpt"},
       3,
       "outside.json: resolution: expected one of [20, 24, 28] (outside the search space), found 30",
       d + "/c.ckpt"},
      {"nas-search",
       {"--supernet", p.ckpt, "--max-params", "10", "--out", d + "/s.json"},
       3,
       "no child satisfies",
       d + "/s.json"},
      {"nas-slice",
       {"--supernet", d + "/missing.ckpt", "--arch", d + "/outside.json", "--out", d + "/c2.ckpt"},
       4,
       "missing.ckpt: cannot open: No such file or directory",
       d + "/c2.ckpt"},
      {"nas-search",
       {"--supernet", d + "/corrupt.ckpt", "--out", d + "/s2.json"},
       4,
       "corrupt.ckpt: corrupt or truncated checkpoint",
       d + "/s2.json"},
      {"nas-search",
       {"--supernet", p.ckpt, "--out", d + "/no/such/dir/s.json"},
       4,
       "output directory " + d + "/no/such/dir does not exist",
       ""},
      {"nas-benchmark",
       {"--model", p.ckpt, "--out", d + "/b.json"},
       4,
       "expected a child checkpoint, found a supernet",
       d + "/b.json"},
      {"nas-search",
       {"--supernet", p.ckpt, "--data", d, "--out", d + "/s3.json"},
       4,
       "train-images-idx3-ubyte.gz: cannot open",
       d + "/s3.json"},
  };
  for (const auto& c : cases) {
    INFO(test::tool_line(c.tool, c.args));
    auto r = test::tool(c.tool, c.args);
    INFO(r.err);
    CHECK(r.code == c.code);
    CHECK_THAT(r.err, Catch::Matchers::Contains(c.message));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);  // one line
    if (!c.must_not_exist.empty()) CHECK_FALSE(test::exists(c.must_not_exist));
  }
  // No temporary files anywhere in the scratch directory.
  auto r = test::run_cmd("find " + q(d) + " -name '*.tmp.*'");
  CHECK(r.out.empty());
}

TEST_CASE("--help documents options, exit codes and an example", "[tool]") {
  for (std::string tool : {"nas-train-supernet", "nas-search", "nas-slice", "nas-benchmark"}) {
    INFO(tool);
    auto r = test::tool(tool, {"--help"});
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Matchers::Contains("--threads"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("--seed"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("Exit codes:"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("5  interrupted"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("Example:\n  " + tool));
  }
}

TEST_CASE("SIGTERM during training saves a checkpoint and exits 5; --resume continues", "[tool]") {
  std::string d = test::temp_dir("sig");
  auto r = test::run_cmd("timeout --preserve-status -s TERM " + test::seconds(4) + " " +
                         test::tool_line("nas-train-supernet", {"--space", test::test_data("tiny-space.yaml"),
                                                                "--train", test::test_data("tiny-train.yaml"), "--out",
                                                                d, "--epochs", "50", "--threads", "1"}));
  INFO(r.err);
  CHECK(r.code == 5);
  CHECK_THAT(r.err, Catch::Matchers::Contains("checkpoint saved to"));
  REQUIRE(test::exists(d + "/supernet.ckpt"));
  // Resuming uses the checkpoint's own specs; a second signal stops it again.
  auto r3 = test::run_cmd("timeout --preserve-status -s INT " + test::seconds(3) + " " +
                          test::tool_line("nas-train-supernet", {"--out", d, "--resume", "--threads", "1"}));
  INFO(r3.err);
  CHECK(r3.code == 5);
  CHECK_THAT(r3.err, Catch::Matchers::Contains("resuming from"));
}

TEST_CASE("fine-tune: --init-from takes the supernet's space; SIGTERM exits 5 and --resume continues", "[tool]") {
  const std::string sup = test::temp_dir("ft-sup"), d = test::temp_dir("ft");
  const std::vector<std::string> train = {"--train", test::test_data("tiny-train.yaml"), "--threads", "1"};
  auto r = test::tool("nas-train-supernet", train,
                      {"--space", test::test_data("tiny-space.yaml"), "--out", sup, "--train-limit", "128"});
  REQUIRE(r.code == 0);
  const std::string init = sup + "/supernet.ckpt";
  auto no_arch = test::tool("nas-train-supernet", train, {"--init-from", init, "--out", d});
  CHECK(no_arch.code == 2);
  CHECK_THAT(no_arch.err, Catch::Matchers::Contains("--init-from fine-tunes one child: give it with --arch"));
  auto sig = test::run_cmd("timeout --preserve-status -s TERM " + test::seconds(4) + " " +
                           test::tool_line("nas-train-supernet", train,
                                           {"--init-from", init, "--arch", "min", "--out", d, "--epochs", "50"}));
  INFO(sig.err);
  CHECK(sig.code == 5);
  CHECK_THAT(sig.err, Catch::Matchers::Contains("fine-tune: r20"));
  CHECK(supernet::read_checkpoint_meta(d + "/supernet.ckpt").init_from == sup + "/supernet.ckpt");
  auto both = test::tool("nas-train-supernet", {"--out", d, "--resume", "--init-from", init});
  CHECK(both.code == 2);
  CHECK_THAT(both.err, Catch::Matchers::Contains("drop --space, --train, --arch, --init-from"));
  auto resumed = test::run_cmd("timeout --preserve-status -s INT " + test::seconds(3) + " " +
                               test::tool_line("nas-train-supernet", {"--out", d, "--resume", "--threads", "1"}));
  INFO(resumed.err);
  CHECK(resumed.code == 5);
  CHECK_THAT(resumed.err, Catch::Matchers::Contains("resuming from"));
  CHECK(supernet::read_checkpoint_meta(d + "/supernet.ckpt").init_from == sup + "/supernet.ckpt");
}

TEST_CASE("from-scratch mode: nas-train-supernet --arch writes a child that nas-benchmark reads", "[tool]") {
  std::string d = test::temp_dir("scratch");
  auto r = test::tool("nas-train-supernet",
                      {"--space", test::test_data("tiny-space.yaml"), "--train", test::test_data("tiny-train.yaml"),
                       "--out", d, "--arch", "min", "--train-limit", "640", "--threads", "2"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(json::parse(r.out)["child"] == d + "/child.ckpt");
  CHECK_THAT(r.err, Catch::Matchers::Contains("from scratch: r20"));
  auto rb = test::tool("nas-benchmark", {"--model", d + "/child.ckpt", "--reps", "2", "--warmup", "0", "--min-time",
                                         "0", "--throughput-batch", "8", "--test-images", "300", "--threads", "1"});
  INFO(rb.err);
  REQUIRE(rb.code == 0);
  auto b = families::bench_result_from_json(json::parse(rb.out), "stdout");
  // 10 steps from scratch: near chance by an amount the BLAS kernel's rounding decides, so no
  // accuracy bar. The 300 images scored as this test scores them (one image of slack).
  CHECK(b.test_images == 300);
  CHECK(b.test_acc ==
        Approx(test::child_top1(d + "/child.ckpt", data::load_mnist_dir(test::kFmnist, false), 300)).margin(1.0 / 300));
  CHECK(b.arch.resolution == 20);
}

TEST_CASE("nas-search --space --evaluator: no supernet or data; killed, then resumed, it ends as if never stopped",
          "[tool]") {
  std::string d = test::temp_dir("external");
  // A slow-ish user evaluator: accuracy from the size of the arch document.
  test::spit(d + "/eval.sh",
             "sleep " + test::seconds(0.1) + "; awk '{n += length($0)} END {printf \"{\\\"accuracy\\\": %.6f}\\n\", 1 - 100 / (100 + n)}'\n");
  const std::vector<std::string> base = {"--space",
                                         test::test_data("tiny-space.yaml"),
                                         "--evaluator",
                                         "sh " + d + "/eval.sh",
                                         "--strategy",
                                         "evolution",
                                         "--population",
                                         "6",
                                         "--sample-size",
                                         "2",
                                         "--budget",
                                         "60",
                                         "--threads",
                                         "1",
                                         "-q"};
  auto full = test::tool("nas-search", base, {"--out", d + "/full.json", "--plot", d + "/front.png"});
  INFO(full.err);
  REQUIRE(full.code == 0);
  CHECK(test::slurp(d + "/front.png").substr(0, 4) == "\x89PNG");  // gnuplot-nox comes with setup.sh
  auto killed = test::run_cmd("timeout -s KILL " + test::seconds(4) + " " +
                              test::tool_line("nas-search", base, {"--out", d + "/resumed.json"}));
  CHECK(killed.code == 137);  // SIGKILL: no chance to write anything but the periodic checkpoints
  REQUIRE(test::exists(d + "/resumed.json"));
  auto partial = families::load_search_result(d + "/resumed.json");
  CHECK(partial.interrupted);
  int partial_evals = 0;
  for (const auto& c : partial.candidates) partial_evals += c.evaluated;
  CHECK(partial_evals % 10 == 0);
  CHECK(partial_evals >= 10);
  auto changed = test::tool("nas-search", base, {"--out", d + "/resumed.json", "--resume", "--seed", "9"});
  CHECK(changed.code == 2);
  CHECK_THAT(changed.err, Catch::Matchers::Contains("cannot resume: --seed differs"));
  auto resumed = test::tool("nas-search", base, {"--out", d + "/resumed.json", "--resume"});
  INFO(resumed.err);
  REQUIRE(resumed.code == 0);
  auto a = families::load_search_result(d + "/full.json");
  auto b = families::load_search_result(d + "/resumed.json");
  CHECK_FALSE(b.interrupted);
  REQUIRE(a.candidates.size() == b.candidates.size());
  for (size_t i = 0; i < a.candidates.size(); ++i) {
    CHECK(a.candidates[i].hash == b.candidates[i].hash);
    CHECK(a.candidates[i].val_acc == b.candidates[i].val_acc);
  }
  CHECK(a.best == b.best);
  CHECK(a.candidates[a.best].estimator == "external");
  auto again = test::tool("nas-search", base, {"--out", d + "/resumed.json", "--resume"});
  CHECK(again.code == 2);
  CHECK_THAT(again.err, Catch::Matchers::Contains("this search finished; nothing to resume"));
}

TEST_CASE("nas-search --estimator low-fidelity trains children from scratch without a supernet", "[tool]") {
  std::string d = test::temp_dir("lowfi");
  auto r = test::tool("nas-search", {"--space",         test::test_data("tiny-space.yaml"),
                                     "--train",         test::test_data("tiny-train.yaml"),
                                     "--estimator",     "low-fidelity",
                                     "--lf-epochs",     "1",
                                     "--lf-images",     "256",
                                     "--lf-resolution", "16",
                                     "--val-images",    "200",
                                     "--strategy",      "random",
                                     "--budget",        "2",
                                     "--threads",       "2",
                                     "--out",           d + "/s.json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto s = families::load_search_result(d + "/s.json");
  int evaluated = 0;
  for (const auto& c : s.candidates)
    if (c.evaluated) {
      ++evaluated;
      CHECK(c.estimator == "low_fidelity");
      CHECK(c.estimator_detail == "1 epochs");
      CHECK(c.val_acc >= 0);  // 256 images for one epoch: the mechanism, not a result
      CHECK(c.val_acc <= 1);
    }
  CHECK(evaluated == 2);
  CHECK(s.estimator_options["estimator"] == "low-fidelity");
  auto bad = test::tool(
      "nas-search", {"--space", test::test_data("tiny-space.yaml"), "--estimator", "learning-curve", "--budget", "2"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Matchers::Contains("give --train"));
}

TEST_CASE("nas-search on a generic space: the user's program scores named decisions and reports costs", "[tool]") {
  std::string d = test::temp_dir("generic");
  test::spit(d + "/space.yaml",
             "kind: nas.search_space\nschema_version: 1\nname: toy-mlp\nfamily: generic\n"
             "decisions:\n  - {name: width, choices: [8, 16, 32, 64]}\n  - {name: act, choices: [relu, gelu]}\n"
             "  - {name: lr, choices: [0.1, 0.01]}\n");
  // Accuracy grows with width, GELU and the smaller learning rate; params = 1000 x width.
  test::spit(d + "/eval.sh",
             "doc=$(tr -d ' \\n')\n"
             "w=$(echo \"$doc\" | sed 's/.*\"width\":\\([0-9]*\\).*/\\1/')\n"
             "g=0; case \"$doc\" in *'\"act\":\"gelu\"'*) g=1;; esac\n"
             "l=0; case \"$doc\" in *'\"lr\":0.01'*) l=1;; esac\n"
             "echo \"{\\\"accuracy\\\": 0.$((50 + w / 2 + 10 * g + 5 * l)), \\\"params\\\": $((1000 * w))}\"\n");
  const std::string evaluator = "sh " + d + "/eval.sh";
  const std::vector<std::string> base = {"--space", d + "/space.yaml", "--threads", "1", "-q"};
  std::vector<std::string> scored = base;  // by the user's program
  scored.insert(scored.end(), {"--evaluator", evaluator});
  auto r = test::tool("nas-search", scored,
                      {"--strategy", "grid", "--budget", "16", "--max-params", "40000", "--out", d + "/s.json",
                       "--best-arch", d + "/best.json", "--csv", d + "/s.csv"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto s = families::load_search_result(d + "/s.json");
  CHECK(s.family == "generic");
  CHECK(s.candidates.size() == 16);
  REQUIRE(s.best >= 0);
  const auto& b = s.candidates[s.best];
  CHECK(b.generic_arch["choices"] == json({{"width", 32}, {"act", "gelu"}, {"lr", 0.01}}));
  CHECK(b.val_acc == Approx(0.81));
  CHECK(b.params == 32000);
  int infeasible = 0;
  for (const auto& c : s.candidates) infeasible += !c.feasible;
  CHECK(infeasible == 4);  // width 64: over the bound the evaluator's params show
  CHECK(json::parse(test::slurp(d + "/best.json")) == b.generic_arch);
  CHECK(s.space_hash.size() == 16);
  // TPE on the same space; its settings are recorded. A resume after `ordered` changed is refused:
  // the same options on another axis are another space.
  const std::vector<std::string> tpe_args = {"--strategy", "tpe", "--tpe-startup", "4",          "--tpe-gamma", "0.2",
                                             "--budget",   "10",  "--out",         d + "/t.json"};
  auto t = test::tool("nas-search", scored, tpe_args);
  INFO(t.err);
  REQUIRE(t.code == 0);
  auto tpe = families::load_search_result(d + "/t.json");
  CHECK(tpe.strategy_options["startup"] == 4);
  CHECK(tpe.strategy_options["gamma"] == 0.2);
  CHECK(tpe.strategy_options["multivariate"] == true);
  CHECK(tpe.candidates.size() >= 10);
  json stopped = json::parse(test::slurp(d + "/t.json"));
  stopped["interrupted"] = true;
  test::spit(d + "/t.json", stopped.dump());
  test::spit(d + "/ordered.yaml",
             "kind: nas.search_space\nschema_version: 1\nname: toy-mlp\nfamily: generic\n"
             "decisions:\n  - {name: width, choices: [8, 16, 32, 64]}\n  - {name: act, choices: [relu, gelu], ordered: true}\n"
             "  - {name: lr, choices: [0.1, 0.01]}\n");
  std::vector<std::string> tpe_resume = tpe_args;
  tpe_resume.push_back("--resume");
  refused(
      test::tool_line("nas-search", {"--space", d + "/ordered.yaml", "--threads", "1", "-q", "--evaluator", evaluator},
                      tpe_resume),
      "cannot resume: the space");
  auto same = test::tool("nas-search", scored, tpe_resume);
  INFO(same.err);
  CHECK(same.code == 0);  // the unchanged space resumes, and replays the same search
  auto replayed = families::load_search_result(d + "/t.json");
  REQUIRE(replayed.candidates.size() == tpe.candidates.size());
  for (size_t i = 0; i < tpe.candidates.size(); ++i) CHECK(replayed.candidates[i].hash == tpe.candidates[i].hash);
  CHECK(replayed.space_hash == tpe.space_hash);
  // NSGA-II on accuracy and the params the program reports: the front, its hypervolume in every
  // metrics line, and a third panel in the plot.
  std::vector<std::string> mo = scored;
  mo.insert(mo.end(), {"--strategy", "nsga2", "--population", "4", "--budget", "12"});
  auto n = test::tool(
      "nas-search", mo,
      {"--objectives", "accuracy,params", "--hv-reference", "0.5,70000", "--out", d + "/n.json", "--metrics",
       d + "/n.jsonl", "--plot", d + "/n.png"});
  INFO(n.err);
  REQUIRE(n.code == 0);
  auto ns = families::load_search_result(d + "/n.json");
  CHECK(ns.objectives == std::vector<std::string>{"accuracy", "params"});
  CHECK(ns.hv_reference == std::vector<double>{0.5, 70000});
  CHECK(ns.multi.hypervolume > 0);
  CHECK_FALSE(ns.multi.front.empty());
  int lines = 0;
  std::istringstream metrics(test::slurp(d + "/n.jsonl"));
  for (std::string line; std::getline(metrics, line); ++lines) CHECK(json::parse(line).contains("hypervolume"));
  CHECK(lines == 12);
  CHECK(test::slurp(d + "/n.png").substr(0, 4) == "\x89PNG");
  // Resumed without --hv-reference and --population: the stopped search's are kept.
  json stopped_n = json::parse(test::slurp(d + "/n.json"));
  stopped_n["interrupted"] = true;
  test::spit(d + "/n.json", stopped_n.dump());
  std::vector<std::string> mo_default = scored;
  mo_default.insert(mo_default.end(), {"--strategy", "nsga2", "--budget", "12"});
  auto resumed_n =
      test::tool("nas-search", mo_default, {"--objectives", "accuracy,params", "--out", d + "/n.json", "--resume"});
  INFO(resumed_n.err);
  REQUIRE(resumed_n.code == 0);
  auto rn = families::load_search_result(d + "/n.json");
  CHECK(rn.hv_reference == std::vector<double>{0.5, 70000});
  CHECK(rn.multi.hypervolume == Approx(ns.multi.hypervolume));
  refused(test::tool_line("nas-search", mo, {"--out", d + "/x.json"}),
          "--strategy nsga2: a generic space has no analytic costs");
  // The multi-objective Bayesian strategy on the same objectives; it too needs them named here.
  std::vector<std::string> bo = scored;
  bo.insert(bo.end(), {"--strategy", "ehvi", "--budget", "12"});
  auto ehvi = test::tool("nas-search", bo,
                         {"--objectives", "accuracy,params", "--hv-reference", "0.5,70000", "--out", d + "/b.json"});
  INFO(ehvi.err);
  REQUIRE(ehvi.code == 0);
  auto bs = families::load_search_result(d + "/b.json");
  CHECK(bs.strategy == "ehvi");
  CHECK(bs.multi.hypervolume > 0);
  CHECK(bs.candidates.back().origin == "expected-hypervolume-improvement");
  refused(test::tool_line("nas-search", bo, {"--out", d + "/x.json"}),
          "--strategy ehvi: a generic space has no analytic costs");
  refused(test::tool_line("nas-search", mo, {"--objectives", "accuracy,flops", "--out", d + "/x.json"}),
          "--objectives: expected one of accuracy, mflops");
  refused(test::tool_line("nas-search", mo,
                          {"--objectives", "accuracy,params", "--hv-reference", "0.5", "--out", d + "/x.json"}),
          "--hv-reference: expected one value per objective (2)");
  // Evolution's sample against its population: the given one, else its default (20).
  std::vector<std::string> evo = scored;
  evo.insert(evo.end(), {"--strategy", "evolution", "--budget", "4", "--out", d + "/x.json"});
  refused(test::tool_line("nas-search", evo, {"--population", "4", "--sample-size", "5"}),
          "--sample-size 5: expected at most --population (4)");
  refused(test::tool_line("nas-search", evo, {"--sample-size", "21"}),
          "--sample-size 21: expected at most --population (20)");
  // Resumed without --population: the sample is checked against the stopped search's population.
  std::vector<std::string> evo30 = scored;
  evo30.insert(evo30.end(), {"--strategy", "evolution", "--budget", "4", "--out", d + "/e.json"});
  auto e = test::tool("nas-search", evo30, {"--population", "30", "--sample-size", "25"});
  INFO(e.err);
  REQUIRE(e.code == 0);
  json stopped_e = json::parse(test::slurp(d + "/e.json"));
  stopped_e["interrupted"] = true;
  test::spit(d + "/e.json", stopped_e.dump());
  auto resumed_e = test::tool("nas-search", evo30, {"--sample-size", "25", "--resume"});
  INFO(resumed_e.err);
  CHECK(resumed_e.code == 0);
  CHECK_FALSE(test::exists(d + "/x.json"));
  // The predictor learns from that search and scores the same space on its own.
  auto p =
      test::tool("nas-search", base,
                 {"--predictor-from", d + "/s.json", "--strategy", "random", "--budget", "8", "--out", d + "/p.json"});
  INFO(p.err);
  REQUIRE(p.code == 0);
  CHECK(families::load_search_result(d + "/p.json").candidates[0].estimator == "predictor");
  // Learning from another space's search: an error naming the file and the candidate.
  auto other = test::tool("nas-search", {"--space", test::test_data("tiny-space.yaml"), "--predictor-from",
                                         d + "/s.json", "--budget", "3", "-q", "--out", d + "/o.json"});
  CHECK(other.code != 0);
  CHECK_THAT(other.err, Catch::Matchers::Contains("s.json: candidates[0].arch"));
  CHECK_FALSE(test::exists(d + "/o.json"));
  // Estimators that build the network cannot score named decisions.
  auto inh = test::tool(
      "nas-search", base,
      {"--estimator", "low-fidelity", "--train", test::test_data("tiny-train.yaml"), "--out", d + "/x.json"});
  CHECK(inh.code == 2);
  CHECK_THAT(inh.err, Catch::Matchers::Contains("space.yaml: a generic space is scored by --evaluator"));
  CHECK_FALSE(test::exists(d + "/x.json"));
}

namespace {
// The usage line every tool logs when it ends (cli::usage_line).
struct Usage {
  double cpu_s = -1, wall_s = -1, cores = -1;
  int busy = -1, threads = -1, torch_threads = -1;
};
Usage parse_usage(const std::string& err) {
  Usage u;
  const size_t at = err.rfind("peak RSS ");
  if (at == std::string::npos) return u;
  const std::string line = err.substr(at, err.find('\n', at) - at);
  std::sscanf(line.c_str(), "peak RSS %*f MiB; CPU %lf s in %lf s (%lf cores); %d busy of %d threads; --threads %d",
              &u.cpu_s, &u.wall_s, &u.cores, &u.busy, &u.threads, &u.torch_threads);
  return u;
}
}  // namespace

TEST_CASE("--threads bounds what a tool runs at once; the default follows the affinity mask and OMP_NUM_THREADS",
          "[tool]") {
  auto& p = pipeline();
  std::string d = test::temp_dir("threads");
  const std::vector<std::string> train = {"--space",
                                          test::test_data("tiny-space.yaml"),
                                          "--train",
                                          test::test_data("tiny-train.yaml"),
                                          "--train-limit",
                                          "1000",
                                          "--stop-after-steps",
                                          "6"};
  // One LibTorch thread does the work; the batch loader's thread adds a little (it mostly waits
  // on a full queue). Were --threads ignored, LibTorch's second OpenMP thread would be busy too
  // (it spins while waiting for work), however loaded the machine is.
  auto check_one = [](const test::RunResult& r) {
    INFO(r.err);
    REQUIRE(r.code == 0);
    Usage u = parse_usage(r.err);
    CHECK(u.torch_threads == 1);
    CHECK(u.busy == 1);
    CHECK(u.cpu_s > 0);
    CHECK(u.cores <= 1.35);
  };
  check_one(test::tool("nas-train-supernet", train, {"--out", d + "/t1", "--threads", "1"}));
  check_one(test::tool("nas-search", {"--supernet", p.ckpt, "--strategy", "random", "--budget", "3", "--val-images",
                                      "300", "--threads", "1"}));
  REQUIRE(test::tool("nas-slice", {"--supernet", p.ckpt, "--arch", "max", "--out", d + "/c.ckpt", "-q"}).code == 0);
  check_one(test::tool("nas-benchmark", {"--model", d + "/c.ckpt", "--reps", "3", "--warmup", "1", "--min-time", "0",
                                         "--throughput-batch", "32", "--test-images", "500", "--threads", "1"}));
  // The default: OMP_NUM_THREADS when set, else the CPUs of the affinity mask.
  check_one(test::run_cmd("OMP_NUM_THREADS=1 " + test::tool_line("nas-train-supernet", train, {"--out", d + "/omp"})));
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(::sched_getaffinity(0, sizeof set, &set) == 0);
  if (CPU_COUNT(&set) < 2 || test::run_cmd("command -v taskset").code != 0) {
    WARN("one CPU or no taskset: the affinity default is not tested");
    return;
  }
  int first = 0;
  while (!CPU_ISSET(first, &set)) ++first;
  check_one(test::run_cmd("env -u OMP_NUM_THREADS taskset -c " + std::to_string(first) + " " +
                          test::tool_line("nas-train-supernet", train, {"--out", d + "/pin"})));
  auto two = test::run_cmd("env -u OMP_NUM_THREADS " +
                           test::tool_line("nas-train-supernet", train, {"--out", d + "/two", "--threads", "2"}));
  REQUIRE(two.code == 0);
  Usage u = parse_usage(two.err);
  CHECK(u.torch_threads == 2);
  CHECK(u.busy >= 1);
  CHECK(u.busy <= 2);
}

namespace {
// What --help shows as an option's default; std::ostream's form for numbers, as CLI11 writes them.
std::string shown(CLI::App& app, const std::string& flag) { return app.get_option(flag)->get_default_str(); }
template <typename T>
std::string str(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
}  // namespace

TEST_CASE("each tool's help shows the library's defaults, and parsing nothing keeps them", "[tool]") {
  CLI::App app;
  SECTION("nas-search: the strategies', the engine's and the estimators'") {
    app::SearchToolOptions o;
    app::add_search_tool_options(app, o);
    app.parse(std::vector<std::string>{});
    const search::StrategyOptions lib;
    const search::SearchOptions engine;
    CHECK(shown(app, "--strategy") == engine.strategy);
    CHECK(shown(app, "--budget") == str(engine.budget));
    CHECK(shown(app, "--curve-margin") == str(search::kCurveMargin));
    const std::string population = app.get_option("--population")->get_description();
    CHECK_THAT(population, Catch::Matchers::Contains(str(lib.population) + " and " + str(lib.nsga2_population)));
    CHECK(shown(app, "--sample-size") == str(lib.sample_size));
    CHECK(shown(app, "--mutation-prob") == str(lib.mutation_prob));
    CHECK(shown(app, "--tpe-startup") == str(lib.tpe_startup));
    CHECK(shown(app, "--tpe-candidates") == str(lib.tpe_candidates));
    CHECK(shown(app, "--hb-max-epochs") == str(lib.hb_max_epochs));
    CHECK(shown(app, "--darts-steps") == str(lib.darts_steps));
    CHECK(shown(app, "--dist-timeout") == str(dist::GroupOptions{}.timeout_s));
    CHECK(o.strategy == engine.strategy);
    CHECK(o.budget == engine.budget);
    CHECK(o.population == 0);  // each strategy's own default
    CHECK(o.sample_size == lib.sample_size);
    CHECK(o.mutation_prob == lib.mutation_prob);
    CHECK(o.tpe_gamma == lib.tpe_gamma);
    CHECK(o.darts_alpha_lr == lib.darts_alpha_lr);
    CHECK(o.bo_init == lib.bo_init);
  }
  SECTION("nas-train-supernet: the trainer's and the process group's") {
    app::TrainToolOptions o;
    app::add_train_tool_options(app, o);
    app.parse(std::vector<std::string>{});
    const train::TrainOptions lib;
    const dist::GroupOptions group;
    CHECK(shown(app, "--workers") == str(lib.workers));
    CHECK(shown(app, "--stop-after-steps") == str(lib.stop_after_steps));
    CHECK(shown(app, "--device") == lib.device);
    CHECK(shown(app, "--dist-timeout") == str(group.timeout_s));
    CHECK(shown(app, "--dist-backend") == group.backend);
    CHECK(shown(app, "--bucket-mb") == str(group.bucket_bytes >> 20));
    CHECK(o.workers == lib.workers);
    CHECK(static_cast<int64_t>(o.common.bucket_mb * (1 << 20)) == group.bucket_bytes);
  }
  SECTION("nas-benchmark: the timing's and the latency table's") {
    app::BenchmarkToolOptions o;
    app::add_benchmark_tool_options(app, o);
    app.parse(std::vector<std::string>{});
    const eval::LutOptions lut;
    CHECK(shown(app, "--batch") == str(lut.batch));
    CHECK(shown(app, "--warmup") == str(lut.timing.warmup));
    CHECK(shown(app, "--reps") == str(lut.timing.min_reps));
    CHECK(shown(app, "--ci") == str(lut.timing.ci));
    CHECK(shown(app, "--max-time") == str(lut.timing.max_seconds));
    CHECK(shown(app, "--calib-archs") == str(lut.calibration_archs));
    CHECK(shown(app, "--model-archs") == str(lut.model_archs));
    CHECK(shown(app, "--rounds") == str(lut.rounds));
    CHECK(o.warmup == lut.timing.warmup);
    CHECK(o.max_time == lut.timing.max_seconds);
    CHECK(o.lut_rounds == lut.rounds);
  }
  SECTION("nas-slice: the common options'") {
    app::SliceToolOptions o;
    app::add_slice_tool_options(app, o);
    const cli::CommonOptions common;
    CHECK(shown(app, "--threads") == str(common.threads));
    CHECK(shown(app, "--precision") == common.precision);
  }
}
