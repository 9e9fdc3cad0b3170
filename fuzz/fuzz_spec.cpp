// libFuzzer target: the YAML/JSON document reader and every spec reader on top of it (search
// spaces of all families, train specs, archs, search results, generic spaces, latency tables).
// A nas::Error is the expected outcome of a bad document; anything else (another exception, a
// crash, a sanitizer report) is a finding. scripts/fuzz.sh runs it.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "families/documents.h"
#include "search/encoding.h"
#include "spec/document.h"
#include "spec/train_spec.h"
#include "supernet/latency_table.h"

namespace {
template <class F>
void expect_nas_error(F&& f) {
  try {
    f();
  } catch (const nas::Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nas::spec::json j;
  try {
    j = nas::spec::parse_document(text, "fuzz.yaml");
  } catch (const nas::Error&) {
    return 0;
  }
  expect_nas_error([&] { nas::families::search_space_from_json(j, "fuzz.yaml"); });
  expect_nas_error([&] { nas::spec::train_spec_from_json(j, "fuzz.yaml"); });
  expect_nas_error([&] { nas::families::arch_from_json(j, "fuzz.yaml"); });
  expect_nas_error([&] { nas::families::search_result_from_json(j, "fuzz.yaml"); });
  expect_nas_error([&] { nas::search::generic_space_from_json(j, "fuzz.yaml"); });
  expect_nas_error([&] { nas::supernet::latency_table_from_json(j, "fuzz.yaml"); });
  return 0;
}
