#pragma once
// nas.search_space: what every family's space shares (name, family, input resolutions); the
// family's own part is a SpaceChoices that its folder (lib/families/<name>/) defines, reads and
// writes. families::search_space_from_json reads a whole document.
#include <memory>
#include <string>
#include <vector>

#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kSearchSpaceKind = "nas.search_space";
inline constexpr int kSearchSpaceVersion = 1;

// Activations the elastic ops implement.
const std::vector<std::string>& activation_names();

// A family's part of a search space. Immutable: copies of a SearchSpace share it.
class SpaceChoices {
 public:
  virtual ~SpaceChoices() = default;
  // Adds the family's keys to the space's canonical JSON.
  virtual void write(json& j) const = 0;
};

// The family of a nas.search that names none (files from before other families existed); a space
// document must name its family.
inline constexpr const char* kDefaultFamily = "mbconv";
// The family name of user-defined spaces scored by an external command (search/encoding.h), which
// are no families::Family.
inline constexpr const char* kGenericFamily = "generic";

struct SearchSpace {
  std::string name;
  std::string family = kDefaultFamily;
  std::vector<int> resolution;  // input resolution choices (square), sorted
  std::shared_ptr<const SpaceChoices> choices;
};

// The canonical form: every default written out, choice sets sorted.
json to_json(const SearchSpace& s);

// Largest choices of a stage, used to size the shared weights.
int max_of(const std::vector<int>& v);
int min_of(const std::vector<int>& v);

}  // namespace nas::spec
