#include "spec/arch.h"

#include "core/hash.h"

namespace nas::spec {

json to_json(const Arch& a) {
  json j;
  j["kind"] = kArchKind;
  j["schema_version"] = kArchVersion;
  j["space"] = a.space;
  j["resolution"] = a.resolution;
  if (a.choices) a.choices->write(j);
  return j;
}

std::string json_hash(const json& j) { return hex64(fnv1a64(compact_dump(j))); }

std::string arch_hash(const Arch& a) { return json_hash(to_json(a)); }

}  // namespace nas::spec
