// The Fashion-MNIST experiment's results document (docs/results/fmnist.json) and its renderer,
// scripts/experiments/fmnist/report.py render (issue 19).
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catch.h"
#include "helpers.h"

using namespace nas;
using nlohmann::json;

namespace {

json child(const std::string& name, double mflops, int params, double inherited, double scratch) {
  return {{"name", name},           {"hash", name + "0123456789"}, {"tags", json::array()},
          {"mflops", mflops},       {"params", params},            {"latency_ms", 0.5},
          {"inherited_val_acc", inherited + 0.01}, {"inherited_test_acc", inherited},
          {"finetuned_test_acc", nullptr},         {"scratch_test_acc", scratch}};
}

json document() {
  return {{"kind", "nas.results"}, {"schema_version", 1}, {"experiment", "fmnist"}, {"command", "make ..."},
          {"budget", "long"}, {"epochs", 24}, {"scratch_epochs", 24}, {"finetune_epochs", 0}, {"train_limit", 0},
          {"search_budget", 120}, {"space", "configs/spaces/x.yaml"}, {"train", "configs/train/x.yaml"},
          {"commit", "abc"}, {"date", "2026-12-07"}, {"machine", {{"cpu", "test"}, {"cores", 2}}},
          {"wall_s", {{"supernet", 7200.0}, {"search", 60.0}}}, {"kendall_tau", 0.8}, {"spearman_rho", 0.9},
          {"rank_children", 2},
          {"children", {child("min", 1.2, 42794, 0.91, 0.912), child("max", 33.2, 1222270, 0.946, 0.9455)}},
          {"published", json::array()}};
}

test::RunResult render(const std::string& json_path, const std::string& how) {
  return test::run_cmd("python3 " + test::src("scripts/experiments/fmnist/report.py") + " render --json " + json_path +
                       " " + how);
}

}  // namespace

TEST_CASE("results: report.py renders the document, inherited accuracy first, targets from its figures", "[results]") {
  const std::string dir = test::temp_dir("results"), doc = dir + "/fmnist.json", md = dir + "/out.md";
  test::spit(doc, document().dump());
  auto r = render(doc, "--out " + md);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::string text = test::slurp(md);
  // The no-retraining figures are the first accuracy columns.
  const auto header = text.find("| child | arch hash");
  REQUIRE(header != std::string::npos);
  CHECK(text.find("inherited, no retraining: val", header) < text.find("fine-tuned: test", header));
  CHECK(text.find("fine-tuned: test", header) < text.find("from scratch: test", header));
  CHECK_THAT(text, Catch::Matchers::Contains("| min0123456789 | 1.20 | 42,794 | 0.500 | 92.00% | 91.00% | - | 91.20% | -0.20 pt |"));
  // Both children are within 0.3 pt, but the target asks for 5; the max child's 94.60% meets 94.5%.
  CHECK_THAT(text, Catch::Matchers::Contains("no retraining: 2 of 2 children (target: at least 5, the best <= 100K-param one included): **missed**"));
  CHECK_THAT(text, Catch::Matchers::Contains("The max child: 94.60% (target 94.5%): **met**"));
  CHECK_THAT(text, Catch::Matchers::Contains("Kendall tau: 0.800 over 2 children (target 0.7 over at least 8): **missed**"));

  // Into a file: only the section between the markers changes.
  const std::string into = dir + "/RESULTS.md";
  const std::string begin = "<!-- begin: rendered from docs/results/fmnist.json -->";
  const std::string end = "<!-- end: rendered from docs/results/fmnist.json -->";
  test::spit(into, "before\n" + begin + "\nold table\n" + end + "\nafter\n");
  REQUIRE(render(doc, "--into " + into).code == 0);
  const std::string merged = test::slurp(into);
  CHECK(merged.rfind("before\n" + begin + "\n", 0) == 0);
  CHECK(merged.find("old table") == std::string::npos);
  CHECK_THAT(merged, Catch::Matchers::Contains("min0123456789"));
  CHECK(merged.size() >= end.size() + 7);
  CHECK(merged.substr(merged.size() - end.size() - 7) == end + "\nafter\n");
}

TEST_CASE("results: a malformed document is refused with one line naming the file and field, nothing written",
          "[results]") {
  const std::string dir = test::temp_dir("results-bad"), doc = dir + "/fmnist.json", md = dir + "/out.md";
  struct Case {
    std::function<void(json&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["children"][1]["mflops"] = "abc"; }, "children[1].mflops: expected a number, found \"abc\""},
      {[](json& j) { j["children"][0].erase("scratch_test_acc"); }, "children[0].scratch_test_acc: missing (expected number)"},
      {[](json& j) { j["children"][0]["inherited_test_acc"] = 91.0; }, "children[0].inherited_test_acc: expected an accuracy in [0, 1], found 91.0"},
      {[](json& j) { j["kind"] = "nas.search"; }, "kind: expected nas.results, found \"nas.search\""},
      {[](json& j) { j["schema_version"] = 2; }, "schema_version: expected at most 1, found 2"},
      {[](json& j) { j["children"] = json::array(); }, "children: expected at least one child"},
      {[](json& j) { j["epochs"] = 2.5; }, "epochs: expected an integer, found 2.5"},
      {[](json& j) { j["wall_s"]["scratch"] = {{"abc", "long"}}; }, "wall_s.scratch.abc: expected seconds (a number or null), found \"long\""},
      {[](json& j) { j["children"][0]["tags"] = {1}; }, "children[0].tags: expected a list of strings"},
  };
  for (const auto& c : cases) {
    json j = document();
    c.spoil(j);
    test::spit(doc, j.dump());
    auto r = render(doc, "--out " + md);
    INFO(c.message);
    CHECK(r.code == 2);
    CHECK(r.err == "report.py: " + doc + ": " + c.message + "\n");
    CHECK_FALSE(test::exists(md));
  }
  test::spit(doc, "{not json");
  auto r = render(doc, "--out " + md);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Matchers::StartsWith("report.py: " + doc + ": "));
  // A file to render into without the markers is refused and left as it was.
  test::spit(doc, document().dump());
  test::spit(md, "no markers here\n");
  auto rm = render(doc, "--into " + md);
  CHECK(rm.code == 2);
  CHECK_THAT(rm.err, Catch::Matchers::Contains(md + ": no section to render into"));
  CHECK(test::slurp(md) == "no markers here\n");
}

TEST_CASE("results: report.py pick takes the ends, the best small child and the front up to --count", "[results]") {
  const std::string dir = test::temp_dir("pick");
  auto arch = [](int width) { return json{{"kind", "nas.arch"}, {"head_width", width}}; };
  json candidates = json::array(), pareto = json::array();
  // Six candidates on the front, from the min child (width 1) to the max child (width 6).
  for (int i = 0; i < 6; ++i) {
    candidates.push_back({{"index", i}, {"hash", "h" + std::to_string(i + 1)}, {"arch", arch(i + 1)},
                          {"mflops", 1.0 + i}, {"feasible", true}, {"evaluated", true},
                          {"metrics", {{"val_acc", 0.8 + 0.01 * i}}}});
    pareto.push_back({{"index", i}});
  }
  test::spit(dir + "/search.json", json{{"candidates", candidates}, {"pareto", pareto}}.dump());
  test::spit(dir + "/small.json", json{{"best", candidates[2]}}.dump());
  test::spit(dir + "/max.json", arch(6).dump());
  test::spit(dir + "/min.json", arch(1).dump());
  auto r = test::run_cmd("python3 " + test::src("scripts/experiments/fmnist/report.py") + " pick --search " + dir +
                         "/search.json --small " + dir + "/small.json --ends " + dir + "/max.json " + dir +
                         "/min.json --count 5 --out " + dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  // max, two of the front's other children (h2, h4, h5 left once the ends and h3 are taken: its
  // ends h5 and h2, largest first), the small child, min: five, none twice.
  CHECK(test::slurp(dir + "/order.txt") == dir + "/max.json\n" + dir + "/h5.json\n" + dir + "/h2.json\n" + dir +
                                               "/small-h3.json\n" + dir + "/min.json\n");
  CHECK(json::parse(test::slurp(dir + "/small-h3.json")) == arch(3));
  CHECK(json::parse(test::slurp(dir + "/max.json")) == arch(6));
}
