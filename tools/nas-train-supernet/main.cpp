// Thin entry point: the work is in lib/app so that tests can call it directly.
#include "app/apps.h"
#include "cli/cli.h"

int main(int argc, char** argv) {
  nas::app::TrainToolOptions opts;
  return nas::cli::run_tool(
      nas::app::kTrainTool, argc, argv, [&](CLI::App& app) { nas::app::add_train_tool_options(app, opts); },
      [&] { nas::app::run_train_tool(opts); });
}
