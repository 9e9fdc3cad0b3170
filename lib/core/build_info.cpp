#include "core/build_info.h"

#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <thread>
#include <vector>

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

namespace {
// The first line of a small file, or "".
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}
// CPUs a cgroup quota allows, or 0 when none is set (or none can be read): the tightest quota on
// the way from this process's cgroup up to the root. cgroup v2: cpu.max ("<quota> <period>" or
// "max <period>"); v1: cpu.cfs_quota_us over cpu.cfs_period_us.
int cgroup_cpu_limit() {
  int limit = 0;
  auto take = [&limit](double quota, double period) {
    if (quota <= 0 || period <= 0) return;
    const int n = std::max(1, static_cast<int>(std::ceil(quota / period)));
    limit = limit > 0 ? std::min(limit, n) : n;
  };
  // Calls f(dir) for root + rel and each of its parents up to root.
  auto walk = [](const std::string& root, std::string rel, const std::function<void(const std::string&)>& f) {
    for (;;) {
      f(root + (rel == "/" ? "" : rel));
      if (rel.empty() || rel == "/") return;
      const size_t slash = rel.rfind('/');
      rel = slash == 0 || slash == std::string::npos ? "/" : rel.substr(0, slash);
    }
  };
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {  // "<id>:<controllers>:<path>"
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",", rel = line.substr(b + 1);
    if (controllers == ",,") {
      walk("/sys/fs/cgroup", rel, [&](const std::string& dir) {
        std::istringstream q(first_line(dir + "/cpu.max"));
        std::string quota;
        double period = 0;
        if (q >> quota >> period && quota != "max") take(std::atof(quota.c_str()), period);
      });
    } else if (controllers.find(",cpu,") != std::string::npos) {
      walk("/sys/fs/cgroup/cpu", rel, [&](const std::string& dir) {
        take(std::atof(first_line(dir + "/cpu.cfs_quota_us").c_str()),
             std::atof(first_line(dir + "/cpu.cfs_period_us").c_str()));
      });
    }
  }
  return limit;
}
}  // namespace

int usable_cpus() {
  int n = cpu_count();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) n = std::min(n, CPU_COUNT(&set));
  const int quota = cgroup_cpu_limit();
  if (quota > 0) n = std::min(n, quota);
  return std::max(1, n);
}

CpuUsage cpu_usage(double busy_share) {
  CpuUsage u;
  struct rusage ru {};
  if (::getrusage(RUSAGE_SELF, &ru) == 0)
    u.cpu_s = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  {
    // Field 22 of /proc/self/stat: the start time in ticks since boot; /proc/uptime: seconds since.
    std::ifstream st("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
    const size_t close = stat.rfind(')');
    std::istringstream fields(close == std::string::npos ? "" : stat.substr(close + 2));
    std::string f;
    double start = -1;
    for (int i = 3; i <= 22 && fields >> f; ++i)
      if (i == 22) start = std::atof(f.c_str()) / tick;
    std::ifstream up("/proc/uptime");
    double uptime = -1;
    if (start >= 0 && up >> uptime) u.wall_s = std::max(0.0, uptime - start);
  }
  std::vector<double> per_thread;
  if (DIR* dp = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(dp)) {
      if (e->d_name[0] == '.') continue;
      // Fields after the command name (which may hold spaces, so find its closing parenthesis):
      // state is field 3, utime and stime are fields 14 and 15.
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream fields(stat.substr(close + 2));
      std::string f;
      double utime = 0, stime = 0;
      for (int i = 3; i <= 15 && fields >> f; ++i) {
        if (i == 14) utime = std::atof(f.c_str());
        if (i == 15) stime = std::atof(f.c_str());
      }
      per_thread.push_back((utime + stime) / tick);
    }
    ::closedir(dp);
  }
  u.threads = static_cast<int>(per_thread.size());
  for (double t : per_thread)
    if (u.cpu_s > 0 && t >= busy_share * u.cpu_s) ++u.busy_threads;
  return u;
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
