#include "spec/search_space.h"

#include <algorithm>

namespace nas::spec {

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {"relu", "relu6", "hswish", "swish", "gelu", "tanh"};
  return names;
}

int max_of(const std::vector<int>& v) { return *std::max_element(v.begin(), v.end()); }
int min_of(const std::vector<int>& v) { return *std::min_element(v.begin(), v.end()); }

json to_json(const SearchSpace& s) {
  json j;
  j["kind"] = kSearchSpaceKind;
  j["schema_version"] = kSearchSpaceVersion;
  j["name"] = s.name;
  j["family"] = s.family;
  j["resolution"] = s.resolution;
  if (s.choices) s.choices->write(j);
  return j;
}

}  // namespace nas::spec
