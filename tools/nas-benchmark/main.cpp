// Thin entry point: the work is in lib/app so that tests can call it directly.
#include "app/apps.h"
#include "cli/cli.h"

int main(int argc, char** argv) {
  nas::app::BenchmarkToolOptions opts;
  return nas::cli::run_tool(
      nas::app::kBenchmarkTool, argc, argv, [&](CLI::App& app) { nas::app::add_benchmark_tool_options(app, opts); },
      [&] { nas::app::run_benchmark_tool(opts); });
}
