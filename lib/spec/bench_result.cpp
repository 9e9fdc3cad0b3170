#include "spec/bench_result.h"

#include "core/error.h"

namespace nas::spec {

json to_json(const BenchContext& c) {
  json j = {{"host", c.host},         {"cpu", c.cpu},         {"cpu_count", c.cpu_count},
            {"threads", c.threads},   {"device", c.device},   {"precision", c.precision}, {"libtorch", c.libtorch},
            {"toolchain", c.toolchain}, {"commit", c.commit}, {"date", c.date}};
  if (!c.cpu_affinity.empty()) j["cpu_affinity"] = c.cpu_affinity;
  if (!c.allocator.empty()) j["allocator"] = c.allocator;
  if (!c.governor.empty()) j["governor"] = c.governor;
  if (c.load_avg >= 0) j["load_avg"] = c.load_avg;
  return j;
}

BenchContext bench_context_from(Obj& c) {
  BenchContext b;
  b.host = c.string("host");
  b.cpu = c.string("cpu");
  b.cpu_count = static_cast<int>(c.integer("cpu_count", 1, 1 << 20));
  b.threads = static_cast<int>(c.integer("threads", 1, 1 << 20));
  b.device = c.string("device");
  b.precision = c.one_of_or("precision", {"fp32", "bf16"}, "fp32");
  b.libtorch = c.string("libtorch");
  b.toolchain = c.string("toolchain");
  b.commit = c.string("commit");
  b.date = c.string("date");
  b.cpu_affinity = c.text_or("cpu_affinity", "");
  b.allocator = c.text_or("allocator", "");
  b.governor = c.text_or("governor", "");
  b.load_avg = c.number_or("load_avg", -1, -1, 1e9);
  c.finish();
  return b;
}

std::vector<std::string> context_differences(const BenchContext& there, const BenchContext& here) {
  std::vector<std::string> d;
  auto cmp = [&](const char* field, const std::string& a, const std::string& b) {
    if (a != b) d.push_back(std::string(field) + ": " + (a.empty() ? "?" : a) + " there, " + (b.empty() ? "?" : b) + " here");
  };
  cmp("cpu", there.cpu, here.cpu);
  cmp("cpu_count", std::to_string(there.cpu_count), std::to_string(here.cpu_count));
  cmp("threads", std::to_string(there.threads), std::to_string(here.threads));
  cmp("device", there.device, here.device);
  cmp("precision", there.precision, here.precision);
  cmp("libtorch", there.libtorch, here.libtorch);
  if (!there.cpu_affinity.empty()) cmp("cpu_affinity", there.cpu_affinity, here.cpu_affinity);
  if (!there.allocator.empty()) cmp("allocator", there.allocator, here.allocator);
  return d;
}

json to_json(const BenchResult& b) {
  json j;
  j["kind"] = kBenchKind;
  j["schema_version"] = kBenchVersion;
  j["context"] = to_json(b.context);
  j["model"] = {{"source", b.source}, {"path", b.model_path}, {"arch", to_json(b.arch)},
                {"hash", b.hash},     {"mflops", b.mflops},   {"params", b.params}};
  j["latency"] = {{"batch", b.batch},       {"warmup", b.warmup},     {"reps", b.reps},
                  {"min_ms", b.min_ms},     {"median_ms", b.median_ms}, {"p90_ms", b.p90_ms},
                  {"mean_ms", b.mean_ms},   {"stdev_ms", b.stdev_ms},
                  {"ci95_ms", {b.ci_low_ms, b.ci_high_ms}}, {"noisy", b.noisy}, {"ci_target", b.ci_target}};
  j["throughput"] = {{"batch", b.throughput_batch}, {"images_per_s", b.images_per_s}};
  if (!b.throughput.empty()) {
    j["throughput"]["batches"] = json::array();
    for (const auto& t : b.throughput)
      j["throughput"]["batches"].push_back({{"batch", t.batch}, {"images_per_s", t.images_per_s}});
  }
  j["memory"] = {{"peak_rss_mib", b.peak_rss_mib}};
  if (b.activations_peak_mib >= 0) j["memory"]["activations_peak_mib"] = b.activations_peak_mib;
  if (b.analytic_mib >= 0) j["memory"]["analytic_mib"] = b.analytic_mib;
  if (b.test_images > 0)
    j["accuracy"] = {{"test_images", b.test_images}, {b.regression ? "r2" : "top1", b.test_acc}};
  else
    j["accuracy"] = nullptr;
  return j;
}

BenchResult bench_result_from_json(const json& j, const std::string& file, const ArchReader& read_arch) {
  Obj o(j, file, "");
  check_header(o, kBenchKind, kBenchVersion);
  BenchResult b;
  {
    Obj c = o.object("context");
    b.context = bench_context_from(c);
  }
  {
    Obj m = o.object("model");
    b.source = m.one_of("source", {"child", "supernet"});
    b.model_path = m.string("path");
    b.arch = read_arch(m.raw("arch"), m.where("arch"));
    b.hash = m.string("hash");
    if (b.hash != arch_hash(b.arch)) m.fail("hash", "the hash of the arch (" + arch_hash(b.arch) + ")", b.hash);
    b.mflops = m.number("mflops", 0, 1e12);
    b.params = m.integer("params", 0, INT64_MAX);
    m.finish();
  }
  {
    Obj l = o.object("latency");
    b.batch = static_cast<int>(l.integer("batch", 1, 1 << 20));
    b.warmup = static_cast<int>(l.integer("warmup", 0, 1 << 30));
    b.reps = static_cast<int>(l.integer("reps", 1, 1 << 30));
    b.min_ms = l.number("min_ms", 0, 1e9);
    b.median_ms = l.number("median_ms", 0, 1e9);
    b.p90_ms = l.number("p90_ms", 0, 1e9);
    b.mean_ms = l.number("mean_ms", 0, 1e9);
    b.stdev_ms = l.number("stdev_ms", 0, 1e9);
    if (l.take("ci95_ms")) {
      auto ci = l.numbers("ci95_ms", 0, 1e9);
      if (ci.size() != 2 || ci[0] > ci[1]) l.fail("ci95_ms", "[low, high]", l.raw("ci95_ms"));
      b.ci_low_ms = ci[0];
      b.ci_high_ms = ci[1];
    }
    b.noisy = l.boolean_or("noisy", false);
    b.ci_target = l.number_or("ci_target", 0, 0, 1);
    l.finish();
  }
  {
    Obj t = o.object("throughput");
    b.throughput_batch = static_cast<int>(t.integer("batch", 1, 1 << 20));
    b.images_per_s = t.number("images_per_s", 0, 1e12);
    if (t.take("batches"))
      for (auto& e : t.objects("batches")) {
        Throughput x;
        x.batch = static_cast<int>(e.integer("batch", 1, 1 << 20));
        x.images_per_s = e.number("images_per_s", 0, 1e12);
        e.finish();
        b.throughput.push_back(x);
      }
    t.finish();
  }
  {
    Obj m = o.object("memory");
    b.peak_rss_mib = m.number("peak_rss_mib", 0, 1e9);
    b.activations_peak_mib = m.number_or("activations_peak_mib", -1, 0, 1e12);
    b.analytic_mib = m.number_or("analytic_mib", -1, 0, 1e12);
    m.finish();
  }
  if (o.take("accuracy")) {
    Obj a = o.object("accuracy");
    b.test_images = a.integer("test_images", 1, INT64_MAX);
    b.regression = a.has("r2");
    b.test_acc = b.regression ? a.number("r2", -1e12, 1) : a.number("top1", 0, 1);
    a.finish();
  }
  o.finish();
  return b;
}

BenchResult load_bench_result(const std::string& path, const ArchReader& read_arch) {
  return bench_result_from_json(load_document(path), path == "-" ? "<stdin>" : path, read_arch);
}

}  // namespace nas::spec
