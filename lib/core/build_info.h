#pragma once
#include <string>

namespace nas {
std::string build_commit();
std::string toolchain_version();
// Host facts for benchmark context blocks.
std::string host_name();
std::string cpu_model();
int cpu_count();
// Peak resident set size of this process in MiB (VmHWM).
double peak_rss_mib();
// Makes glibc's malloc keep freed memory for reuse: a fixed mmap threshold of 32 MiB (its
// maximum; the default starts at 128 KiB and moves with the program's history) and no trimming of
// the heap. Without it a LibTorch forward pass of a small model mmaps, page-faults and unmaps its
// activations on some runs and not on others, and the same child measures 0.6x or 1.5x its usual
// latency depending on what ran before it (docs/PERFORMANCE.md). Stays for the rest of the process.
void tune_allocator();
// The malloc setting, as benchmark contexts record it: "glibc-tuned" after tune_allocator, "glibc"
// before, "" when the C library is not glibc.
std::string allocator_setting();
// UTC time as ISO 8601.
std::string utc_now_iso();
}  // namespace nas
