#include "families/documents.h"

#include "core/error.h"
#include "families/family.h"

namespace nas::families {

namespace {
// Every registered family's name, in the registry's order.
std::vector<std::string> family_names() {
  std::vector<std::string> names;
  for (const Family* f : all()) names.push_back(f->name());
  return names;
}
}  // namespace

spec::SearchSpace search_space_from_json(const spec::json& j, const std::string& file) {
  spec::Obj o(j, file, "");
  spec::check_header(o, spec::kSearchSpaceKind, spec::kSearchSpaceVersion);
  spec::SearchSpace s;
  s.name = o.string("name");
  s.family = o.one_of("family", family_names());
  of(s).read_space(o, s);
  return s;
}

spec::SearchSpace load_search_space(const std::string& path) {
  return search_space_from_json(spec::load_document(path), path == "-" ? "<stdin>" : path);
}

spec::Arch arch_from_json(const spec::json& j, const std::string& file) {
  spec::Obj o(j, file, "");
  spec::check_header(o, spec::kArchKind, spec::kArchVersion);
  spec::Arch a;
  a.space = o.string("space");
  a.resolution = static_cast<int>(o.integer("resolution", 1, 1 << 16));
  const Family* reader = all().front();
  for (const Family* f : all())
    if (f->claims(j)) {
      reader = f;
      break;
    }
  a.choices = reader->read_arch(o);
  return a;
}

spec::Arch load_arch(const std::string& path) {
  spec::json j = spec::load_document(path);
  const std::string file = path == "-" ? "<stdin>" : path;
  // A nas.search result stands for its best candidate, so `nas-slice --arch search.json` works.
  if (j.is_object() && j.contains("kind") && j["kind"] == "nas.search") {
    NAS_CHECK(j.contains("best") && j["best"].is_object() && j["best"].contains("arch"), SpecError,
              file << ": best: expected the best candidate with an arch, found none (no feasible candidate?)");
    return arch_from_json(j["best"]["arch"], file + " (best.arch)");
  }
  return arch_from_json(j, file);
}

spec::SearchResult search_result_from_json(const spec::json& j, const std::string& file) {
  // The family first: a name no family has would otherwise show as candidates of another family.
  if (j.is_object() && j.value("kind", "") == spec::kSearchKind && j.contains("family") && j["family"].is_string()) {
    std::vector<std::string> names = family_names();
    names.push_back(spec::kGenericFamily);
    spec::Obj o(j, file, "");
    o.one_of("family", names);
  }
  return spec::search_result_from_json(j, file, arch_from_json);
}

spec::SearchResult load_search_result(const std::string& path) {
  return search_result_from_json(spec::load_document(path), path == "-" ? "<stdin>" : path);
}

spec::BenchResult bench_result_from_json(const spec::json& j, const std::string& file) {
  return spec::bench_result_from_json(j, file, arch_from_json);
}

spec::BenchResult load_bench_result(const std::string& path) { return spec::load_bench_result(path, arch_from_json); }

}  // namespace nas::families
