#pragma once
// The one Catch2 compatibility header: Debian ships Catch2 v2, PyTorch machines v3.
#if defined(NAS_CATCH3)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
using Catch::Approx;
// v3 renamed the string matcher; keep v2's spelling in the tests.
namespace Catch::Matchers {
inline StringContainsMatcher Contains(const std::string& s) { return ContainsSubstring(s); }
}  // namespace Catch::Matchers
#else
#include <catch2/catch.hpp>
#endif
