#pragma once
// Test helpers that need LibTorch and a supernet.
#include "supernet/supernet.h"

namespace nas::test {

// Random BN statistics and affine parameters, so that "same BN statistics" is a real check.
void randomize_bn(supernet::Supernet& net);

}  // namespace nas::test
