#include "spec/bench_result.h"

#include "core/error.h"

namespace nas::spec {

json to_json(const BenchResult& b) {
  json j;
  j["kind"] = kBenchKind;
  j["schema_version"] = kBenchVersion;
  const auto& c = b.context;
  j["context"] = {{"host", c.host},         {"cpu", c.cpu},         {"cpu_count", c.cpu_count},
                  {"threads", c.threads},   {"device", c.device},   {"precision", c.precision}, {"libtorch", c.libtorch},
                  {"toolchain", c.toolchain}, {"commit", c.commit}, {"date", c.date}};
  j["model"] = {{"source", b.source}, {"path", b.model_path}, {"arch", to_json(b.arch)},
                {"hash", b.hash},     {"mflops", b.mflops},   {"params", b.params}};
  j["latency"] = {{"batch", b.batch},       {"warmup", b.warmup},     {"reps", b.reps},
                  {"min_ms", b.min_ms},     {"median_ms", b.median_ms}, {"p90_ms", b.p90_ms},
                  {"mean_ms", b.mean_ms},   {"stdev_ms", b.stdev_ms}};
  j["throughput"] = {{"batch", b.throughput_batch}, {"images_per_s", b.images_per_s}};
  j["memory"] = {{"peak_rss_mib", b.peak_rss_mib}};
  if (b.test_images > 0)
    j["accuracy"] = {{"test_images", b.test_images}, {"top1", b.test_acc}};
  else
    j["accuracy"] = nullptr;
  return j;
}

BenchResult bench_result_from_json(const json& j, const std::string& file) {
  Obj o(j, file, "");
  check_header(o, kBenchKind, kBenchVersion);
  BenchResult b;
  {
    Obj c = o.object("context");
    b.context.host = c.string("host");
    b.context.cpu = c.string("cpu");
    b.context.cpu_count = static_cast<int>(c.integer("cpu_count", 1, 1 << 20));
    b.context.threads = static_cast<int>(c.integer("threads", 1, 1 << 20));
    b.context.device = c.string("device");
    b.context.precision = c.one_of_or("precision", {"fp32", "bf16"}, "fp32");
    b.context.libtorch = c.string("libtorch");
    b.context.toolchain = c.string("toolchain");
    b.context.commit = c.string("commit");
    b.context.date = c.string("date");
    c.finish();
  }
  {
    Obj m = o.object("model");
    b.source = m.one_of("source", {"child", "supernet"});
    b.model_path = m.string("path");
    b.arch = arch_from_json(m.raw("arch"), m.where("arch"));
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
    l.finish();
  }
  {
    Obj t = o.object("throughput");
    b.throughput_batch = static_cast<int>(t.integer("batch", 1, 1 << 20));
    b.images_per_s = t.number("images_per_s", 0, 1e12);
    t.finish();
  }
  {
    Obj m = o.object("memory");
    b.peak_rss_mib = m.number("peak_rss_mib", 0, 1e9);
    m.finish();
  }
  if (o.take("accuracy")) {
    Obj a = o.object("accuracy");
    b.test_images = a.integer("test_images", 1, INT64_MAX);
    b.test_acc = a.number("top1", 0, 1);
    a.finish();
  }
  o.finish();
  return b;
}

BenchResult load_bench_result(const std::string& path) {
  return bench_result_from_json(load_document(path), path == "-" ? "<stdin>" : path);
}

}  // namespace nas::spec
