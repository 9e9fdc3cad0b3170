#pragma once
// Family mlp: a chain of fully connected hidden layers (elastic depth, per-layer width and
// activation) on the flattened input at one resolution.
#include "families/family.h"

namespace nas::families::mlp {

const Family& family();

}  // namespace nas::families::mlp
