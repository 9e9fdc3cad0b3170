#include "supernet/checkpoint_meta.h"

#include <climits>

#include "core/build_info.h"
#include "core/error.h"
#include "families/documents.h"

namespace nas::supernet {

CheckpointMeta meta_from_json(const spec::json& j, const std::string& path) {
  spec::Obj o(j, path, "nas_meta");
  const auto& fmt = o.raw("format");
  NAS_CHECK(fmt.is_string() && fmt.get<std::string>() == kCheckpointFormat, CheckpointError,
            path << ": not a nas-toolchain checkpoint (format " << spec::describe(fmt) << ")");
  int64_t v = o.integer("format_version", 1, INT32_MAX);
  NAS_CHECK(v <= kCheckpointVersion, CheckpointError,
            path << ": checkpoint format_version " << v << " is newer than this build supports ("
                 << kCheckpointVersion << ")");
  CheckpointMeta m;
  m.type = o.one_of("type", {"supernet", "child"});
  m.space = families::search_space_from_json(o.raw("space"), path + " (embedded search space)");
  m.train = spec::train_spec_from_json(o.raw("train"), path + " (embedded train spec)");
  m.in_channels = static_cast<int>(o.integer("in_channels", 1, 4096));
  m.num_classes = static_cast<int>(o.integer("num_classes", 1, 1 << 20));  // 1: regression
  m.image_size = static_cast<int>(o.integer("image_size", 1, 1 << 16));
  m.step = o.integer("step", 0, INT64_MAX);
  m.total_steps = o.integer("total_steps", 0, INT64_MAX);
  m.finished = o.boolean("finished");
  if (o.take("arch")) m.arch = families::arch_from_json(o.raw("arch"), path + " (embedded arch)");
  m.commit = o.string_or("commit", "");
  m.digest = o.string_or("tensors_fnv1a64", "");
  m.optimizer_digest = o.string_or("optimizer_fnv1a64", "");
  m.created = o.string_or("created", "");
  m.elapsed_s = o.number_or("elapsed_s", 0.0, 0.0, 1e12);
  if (o.take("init_from")) {
    spec::Obj i = o.object("init_from");
    m.init_from = i.string("path");
    m.init_digest = i.string_or("tensors_fnv1a64", "");
    i.finish();
  }
  o.finish();
  NAS_CHECK(m.type != "child" || m.arch.has_value(), CheckpointError, path << ": child checkpoint without an arch");
  return m;
}

spec::json meta_to_json(const CheckpointMeta& m) {
  spec::json j;
  j["format"] = kCheckpointFormat;
  j["format_version"] = kCheckpointVersion;
  j["type"] = m.type;
  j["space"] = spec::to_json(m.space);
  j["train"] = spec::to_json(m.train);
  j["in_channels"] = m.in_channels;
  j["num_classes"] = m.num_classes;
  j["image_size"] = m.image_size;
  j["step"] = m.step;
  j["total_steps"] = m.total_steps;
  j["finished"] = m.finished;
  if (m.arch) j["arch"] = spec::to_json(*m.arch);
  j["commit"] = m.commit.empty() ? build_commit() : m.commit;
  j["created"] = m.created.empty() ? utc_now_iso() : m.created;
  if (!m.digest.empty()) j["tensors_fnv1a64"] = m.digest;
  if (!m.optimizer_digest.empty()) j["optimizer_fnv1a64"] = m.optimizer_digest;
  if (m.elapsed_s > 0) j["elapsed_s"] = m.elapsed_s;
  if (!m.init_from.empty()) j["init_from"] = {{"path", m.init_from}, {"tensors_fnv1a64", m.init_digest}};
  return j;
}

}  // namespace nas::supernet
