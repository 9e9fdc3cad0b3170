// libFuzzer target: a checkpoint's metadata record (JSON text, as stored in the archive) and its
// reader, which also parses the embedded search space, train spec and arch.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "spec/document.h"
#include "supernet/checkpoint_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nas::spec::json j;
  try {
    j = nas::spec::json::parse(text);
  } catch (const nas::spec::json::exception&) {
    return 0;  // the checkpoint reader reports invalid JSON itself
  }
  try {
    nas::supernet::meta_from_json(j, "fuzz.ckpt");
  } catch (const nas::Error&) {
  }
  return 0;
}
