#include "core/build_info.h"

#include <sys/resource.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <ctime>
#include <fstream>
#include <thread>

#include "nas_build_commit.h"  // generated at build time (cmake/build_commit.cmake)
#ifndef NAS_VERSION
#define NAS_VERSION "0.0.0"
#endif

namespace nas {

std::string build_commit() { return NAS_GIT_COMMIT; }
std::string toolchain_version() { return NAS_VERSION; }

namespace {
bool g_allocator_tuned = false;
}

void tune_allocator() {
#if defined(__GLIBC__)
  // Both calls also switch off glibc's dynamic thresholds, which are what made timings depend on
  // history. 32 MiB is the largest mmap threshold mallopt accepts on 64-bit glibc.
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  g_allocator_tuned = g_allocator_tuned || (mmap_ok && trim_ok);
#endif
}

std::string allocator_setting() {
#if defined(__GLIBC__)
  return g_allocator_tuned ? "glibc-tuned" : "glibc";
#else
  return "";
#endif
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
  return "unknown";
}

int cpu_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

std::string utc_now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace nas
