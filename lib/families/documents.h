#pragma once
// Reading the documents whose contents depend on a family: search spaces and archs, and the
// results that embed archs. Each asks the family for its part (families/family.h). Torch-free.
#include <string>

#include "spec/arch.h"
#include "spec/bench_result.h"
#include "spec/search_result.h"
#include "spec/search_space.h"

namespace nas::families {

// Parsed and validated (`file` names the source in errors; choice sets are returned sorted).
spec::SearchSpace search_space_from_json(const spec::json& j, const std::string& file);
spec::SearchSpace load_search_space(const std::string& path);
// Read by the family whose keys it holds, or else by mbconv (whose errors then name its missing
// keys); not checked against a space (validate_arch does).
spec::Arch arch_from_json(const spec::json& j, const std::string& file);
// Reads a nas.arch file, or the best candidate of a nas.search file.
spec::Arch load_arch(const std::string& path);

spec::SearchResult search_result_from_json(const spec::json& j, const std::string& file);
spec::SearchResult load_search_result(const std::string& path);
spec::BenchResult bench_result_from_json(const spec::json& j, const std::string& file);
spec::BenchResult load_bench_result(const std::string& path);

}  // namespace nas::families
