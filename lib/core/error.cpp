#include "core/error.h"
// Out-of-line anchor so the error types' vtables live in one object file.
namespace nas {
namespace {
[[maybe_unused]] const int kAnchor = 0;
}
}  // namespace nas
