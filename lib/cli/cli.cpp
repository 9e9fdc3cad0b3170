#include "cli/cli.h"

#include <torch/torch.h>

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/dist.h"
#include "nn/precision.h"

namespace nas::cli {

void add_common_options(CLI::App& app, CommonOptions& o) {
  app.add_option("--threads", o.threads,
                 "CPU threads for LibTorch's kernels (0: OMP_NUM_THREADS if set, else the cores this process may "
                 "use, per its affinity mask and cgroup CPU quota, divided among a machine's data-parallel processes)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_option_function<uint64_t>(
         "--seed",
         [&o](const uint64_t& s) {
           o.seed = s;
           o.seed_given = true;
         },
         "Random seed (default: the spec's seed, else 0)")
      ->type_name("UINT")
      ->check(CLI::Range(uint64_t{0}, static_cast<uint64_t>(INT64_MAX)));
  app.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app.add_option("--precision", o.precision,
                 "fp32, or bf16: forward passes under autocast to bfloat16 (convolutions and matmuls in bf16)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_flag("-v,--verbose", o.verbose, "More log lines");
  app.add_flag("-q,--quiet", o.quiet, "Errors only on stderr");
  app.add_flag("--system-malloc", o.system_malloc,
               "Keep glibc's default malloc thresholds (by default freed memory is kept for reuse: steadier and "
               "faster CPU timings, see docs/PERFORMANCE.md)");
}

void add_distributed_options(CLI::App& app, CommonOptions& o) {
  o.distributed = true;
  app.add_option("--dist-timeout", o.dist_timeout,
                 "Data parallel: seconds to wait for the other processes (rendezvous, each collective; in a search "
                 "also rank 0's DARTS relaxation and one evaluation) before exiting 6")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  app.add_option("--dist-backend", o.dist_backend,
                 "Data parallel: auto (NCCL for CUDA tensors where LibTorch has it, else Gloo), gloo or nccl")
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}))
      ->capture_default_str();
  app.add_option("--bucket-mb", o.bucket_mb, "Data parallel: gradient all-reduce bucket size in MiB")
      ->check(CLI::Range(0.01, 4096.0))
      ->capture_default_str();
}

int default_threads(int threads_flag, int local_world_size) {
  if (threads_flag > 0) return threads_flag;
  // OMP_NUM_THREADS as LibTorch and OpenMP read it (a job script's setting for every program); of
  // a nested list ("4,2") the outermost level.
  if (const char* e = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(e, &end, 10);
    if (end != e && (*end == 0 || *end == ',') && n > 0 && n <= 4096) return static_cast<int>(n);
  }
  // The cores this process may use (affinity, cgroup quota), shared by the processes of a machine.
  return std::max(1, usable_cpus() / std::max(1, local_world_size));
}

void apply_common_options(const CommonOptions& o) {
  set_log_level(o.quiet ? 0 : 1 + o.verbose);
  dist::LaunchEnv env = dist::read_launch_env();
  // SLURM and Open MPI set their variables for every program of a job: a one-process tool ignores
  // them; torchrun's RANK/WORLD_SIZE are meant for this program.
  if (env.distributed() && !o.distributed && env.launcher != "torchrun") env = dist::LaunchEnv{};
  if (env.distributed()) {
    NAS_CHECK(o.distributed, UsageError,
              "WORLD_SIZE=" << env.world_size << " (" << env.launcher << "): this tool runs as one process; start it "
                            << "without a launcher (or unset RANK and WORLD_SIZE)");
    set_log_prefix(log_prefix() + "[rank " + std::to_string(env.rank) + "]");
    if (env.rank != 0) set_log_level(o.verbose ? 1 : 0);  // rank 0 reports; the others print errors
  }
  if (!o.system_malloc) tune_allocator();
  torch::set_num_threads(default_threads(o.threads, env.local_world_size));
  static bool interop_set = false;
  if (!interop_set) {
    interop_set = true;
    try {
      torch::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // Already started by an earlier call in this process (tests); harmless.
    }
  }
  if (o.device == "cuda")
    NAS_CHECK(torch::cuda::is_available(), UsageError, "--device cuda: this LibTorch has no CUDA or no GPU is visible");
  NAS_CHECK(o.precision != "bf16" || o.device == "cuda", UsageError,
            "--precision bf16: autocast to bfloat16 needs --device cuda (LibTorch's CPU kernels lack bf16 "
            "backward ops)");
  nn::set_default_precision(nn::parse_precision(o.precision));
  install_signal_handlers();
  if (env.distributed() && !dist::world()) {
    dist::GroupOptions go;
    go.timeout_s = o.dist_timeout;
    go.device = o.device;
    go.backend = o.dist_backend;
    go.bucket_bytes = static_cast<int64_t>(o.bucket_mb * 1024.0 * 1024.0);
    dist::set_world(dist::init(env, go));
  }
}

std::string usage_line() {
  // Peak memory for capacity planning (docs/PERFORMANCE.md records the demo pipeline's), and CPU
  // use against --threads: LibTorch's threads plus the batch loader's one.
  const CpuUsage u = cpu_usage();
  std::ostringstream line;
  line << std::fixed << std::setprecision(1) << "peak RSS " << peak_rss_mib() << " MiB; CPU " << u.cpu_s << " s in "
       << u.wall_s << " s (" << std::setprecision(2) << (u.wall_s > 0 ? u.cpu_s / u.wall_s : 0.0) << " cores); "
       << u.busy_threads << " busy of " << u.threads << " threads; --threads " << torch::get_num_threads();
  return line.str();
}

std::string exit_codes_help() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  runtime failure (e.g. training diverged)\n"
         "  2  usage error (bad or missing flags)\n"
         "  3  invalid or unsupported spec (YAML/JSON, arch outside its space, data that do not fit)\n"
         "  4  I/O or checkpoint failure (missing, unreadable, corrupt or unwritable file)\n"
         "  5  interrupted by SIGINT/SIGTERM (after saving what can be saved)\n"
         "  6  distributed failure: a peer process died or hung past --dist-timeout, or not all joined\n";
}

int run_tool(const ToolInfo& info, int argc, char** argv, const std::function<void(CLI::App&)>& setup,
             const std::function<void()>& run) {
  set_log_prefix(info.name);
  CLI::App app(info.summary, info.name);
  app.footer("\n" + exit_codes_help() + "\nExample:\n  " + info.example + "\n\nnas-toolchain " +
             toolchain_version() + " (" + build_commit() + ")");
  app.set_version_flag("--version", toolchain_version() + " (" + build_commit() + ")");
  setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << info.name << ": error: " << e.what() << " (see --help)\n";
    return kExitUsage;
  }
  int code = kExitOk;
  try {
    run();
    log_info(usage_line());
  } catch (const Error& e) {
    std::cerr << log_prefix() << ": error: " << e.what() << "\n";
    code = e.exit_code();
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    std::cerr << log_prefix() << ": error: " << m.substr(0, m.find('\n')) << "\n";
    code = kExitRuntime;
  } catch (const std::bad_alloc&) {
    std::cerr << log_prefix() << ": error: out of memory\n";
    code = kExitRuntime;
  } catch (const std::exception& e) {
    std::cerr << log_prefix() << ": error: " << e.what() << "\n";
    code = kExitRuntime;
  }
  if (dist::world()) {
    // After a failed collective the peers may be gone and tearing down could block on them: exit
    // at once (every file was written atomically, or not at all).
    if (code == kExitDistributed || dist::world()->failed()) {
      std::cerr.flush();
      std::_Exit(code == kExitOk ? kExitDistributed : code);
    }
    dist::set_world(nullptr);
  }
  return code;
}

}  // namespace nas::cli
