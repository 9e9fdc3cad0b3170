#include "cli/cli.h"

#include <torch/torch.h>

#include <iostream>

#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "nn/precision.h"

namespace nas::cli {

void add_common_options(CLI::App& app, CommonOptions& o) {
  app.add_option("--threads", o.threads, "CPU threads for LibTorch (0: all cores)")
      ->check(CLI::Range(0, 4096))
      ->default_val(0);
  app.add_option_function<uint64_t>(
         "--seed",
         [&o](const uint64_t& s) {
           o.seed = s;
           o.seed_given = true;
         },
         "Random seed (default: the spec's seed, else 0)")
      ->type_name("UINT")
      ->check(CLI::Range(uint64_t{0}, static_cast<uint64_t>(INT64_MAX)));
  app.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->default_val("cpu");
  app.add_option("--precision", o.precision,
                 "fp32, or bf16: forward passes under autocast to bfloat16 (convolutions and matmuls in bf16)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->default_val("fp32");
  app.add_flag("-v,--verbose", o.verbose, "More log lines");
  app.add_flag("-q,--quiet", o.quiet, "Errors only on stderr");
  app.add_flag("--system-malloc", o.system_malloc,
               "Keep glibc's default malloc thresholds (by default freed memory is kept for reuse: steadier and "
               "faster CPU timings, see docs/PERFORMANCE.md)");
}

void apply_common_options(const CommonOptions& o) {
  set_log_level(o.quiet ? 0 : 1 + o.verbose);
  if (!o.system_malloc) tune_allocator();
  int n = o.threads > 0 ? o.threads : cpu_count();
  torch::set_num_threads(n);
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
}

std::string exit_codes_help() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  runtime failure (e.g. training diverged)\n"
         "  2  usage error (bad or missing flags)\n"
         "  3  invalid or unsupported spec (YAML/JSON, arch outside its space, data that do not fit)\n"
         "  4  I/O or checkpoint failure (missing, unreadable, corrupt or unwritable file)\n"
         "  5  interrupted by SIGINT/SIGTERM (after saving what can be saved)\n";
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
  try {
    run();
    return kExitOk;
  } catch (const Error& e) {
    std::cerr << info.name << ": error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    std::cerr << info.name << ": error: " << m.substr(0, m.find('\n')) << "\n";
    return kExitRuntime;
  } catch (const std::bad_alloc&) {
    std::cerr << info.name << ": error: out of memory\n";
    return kExitRuntime;
  } catch (const std::exception& e) {
    std::cerr << info.name << ": error: " << e.what() << "\n";
    return kExitRuntime;
  }
}

}  // namespace nas::cli
