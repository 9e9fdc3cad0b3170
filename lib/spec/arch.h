#pragma once
// nas.arch: one concrete child of a search space, with a canonical form and a stable hash. What
// every family's arch shares (its space's name, its input resolution) lives here; the family's own
// choices are an ArchChoices that its folder (lib/families/<name>/) defines, reads and checks.
#include <functional>
#include <memory>
#include <string>

#include "spec/document.h"

namespace nas::spec {

inline constexpr const char* kArchKind = "nas.arch";
inline constexpr int kArchVersion = 1;

// A family's choices of one child. Immutable: copies of an Arch share them.
class ArchChoices {
 public:
  virtual ~ArchChoices() = default;
  // The family's name, as its space files name it.
  virtual std::string family() const = 0;
  // Adds the choices' keys to the arch's canonical JSON.
  virtual void write(json& j) const = 0;
  virtual bool equals(const ArchChoices& other) const = 0;
};

struct Arch {
  std::string space;  // name of the search space it belongs to
  int resolution = 0;
  std::shared_ptr<const ArchChoices> choices;  // never null in an arch read or made by a family
  std::string family() const { return choices ? choices->family() : ""; }
  bool operator==(const Arch& o) const {
    return space == o.space && resolution == o.resolution &&
           (choices == o.choices || (choices && o.choices && choices->equals(*o.choices)));
  }
  bool operator!=(const Arch& o) const { return !(*this == o); }
};

// Canonical JSON of an arch (kind, schema_version and every choice; keys sorted).
json to_json(const Arch& a);
// Stable 16-hex-digit hash of a document's compact JSON: the key of archs, generic children and
// spaces alike.
std::string json_hash(const json& j);
// Stable 16-hex-digit hash of the canonical form (json_hash of to_json(a)).
std::string arch_hash(const Arch& a);

// Reads the arch of a document (a nas.arch, or one embedded in another document) at `where`:
// families::arch_from_json, passed down by the tools so that spec needs no family.
using ArchReader = std::function<Arch(const json& j, const std::string& where)>;

}  // namespace nas::spec
