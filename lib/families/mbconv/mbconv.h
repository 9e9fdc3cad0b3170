#pragma once
// Family mbconv: a BigNAS/once-for-all chain of inverted-residual stages (elastic resolution,
// stem and head width, and per stage depth, width, and per block expand ratio and kernel size).
#include "families/family.h"

namespace nas::families::mbconv {

const Family& family();

}  // namespace nas::families::mbconv
