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
// UTC time as ISO 8601.
std::string utc_now_iso();
}  // namespace nas
