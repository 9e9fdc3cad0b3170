#pragma once
#include <string>

namespace nas {
std::string build_commit();
std::string toolchain_version();
// Host facts for benchmark context blocks.
std::string host_name();
std::string cpu_model();
int cpu_count();
// The CPUs this process may use: its affinity mask (taskset, SLURM and container cpusets), capped
// by a cgroup CPU quota (cgroup v2 cpu.max or v1 cfs_quota_us, rounded up). The default thread
// count: cpu_count() on a cluster node that gave a job 4 of its 64 cores would run 64 threads on 4.
int usable_cpus();
// This process's CPU use since it started, for the check that it never runs more threads than
// --threads allows. busy_threads counts the live threads whose CPU time is at least `busy_share`
// of the process's (threads that have exited count in cpu_s only).
struct CpuUsage {
  double cpu_s = 0;   // user + system, all threads, the exited ones included
  double wall_s = 0;  // since the process started (loading LibTorch takes a CPU second before main)
  int threads = 0;   // live threads
  int busy_threads = 0;
};
CpuUsage cpu_usage(double busy_share = 0.05);
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
