#pragma once
// The one Catch2 compatibility header: Debian ships Catch2 v2, PyTorch machines v3.
#if defined(NAS_CATCH3)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
using Catch::Approx;
#define NAS_CATCH_V3 1
#else
#include <catch2/catch.hpp>
#endif
