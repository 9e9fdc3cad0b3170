#pragma once
// Family cell: NAS-Bench-201 / DARTS cells (one searched genotype for every normal cell, another
// for every reduction cell), each edge choosing one op.
#include <cstdint>
#include <string>

#include "families/family.h"

namespace nas::families::cell {

const Family& family();

// One edge op reading c_in channels at res x res and writing c_out channels at conv_out(res,
// stride), as nn/cell.cpp builds it: MACs and parameters; peak_activations holds the largest pair
// of consecutive tensors inside the op (its transient memory).
Cost op_cost(const std::string& op, int64_t c_in, int64_t c_out, int stride, int64_t res);

}  // namespace nas::families::cell
