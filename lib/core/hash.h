#pragma once
#include <cstdint>
#include <string>

namespace nas {
// FNV-1a, 64 bit: stable across platforms and releases (used for arch hashes and seeds).
uint64_t fnv1a64(const std::string& data);
// 16 lowercase hex digits.
std::string hex64(uint64_t v);
// Mixes several integers into one seed (splitmix64 steps), for "seeded from (seed, step, child)".
uint64_t mix_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0);
}  // namespace nas
