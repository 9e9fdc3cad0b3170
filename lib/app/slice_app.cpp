#include <torch/torch.h>

#include <iostream>

#include "app/app_data.h"
#include "app/apps.h"
#include "core/error.h"
#include "core/io.h"
#include "core/log.h"
#include "eval/evaluate.h"
#include "export/onnx_export.h"
#include "families/family.h"
#include "supernet/checkpoint.h"

namespace nas::app {

const cli::ToolInfo kSliceTool{
    "nas-slice",
    "Cut a child out of a trained supernet into a standalone checkpoint that needs no retraining:\n"
    "BN statistics recalibrated on a fixed, seeded subset of training images, arch embedded.\n"
    "--arch takes max or min (the space's largest or smallest child), a nas.arch file, a nas.search\nresult (its best child), or '-' for stdin.",
    "nas-slice --supernet runs/fmnist/supernet.ckpt --arch runs/fmnist/search.json --out runs/fmnist/child.ckpt"};

void add_slice_tool_options(CLI::App& app, SliceToolOptions& o) {
  app.add_option("--supernet", o.supernet, "Supernet checkpoint")->required();
  app.add_option("--arch", o.arch, "max, min, a nas.arch file or a nas.search file (its best); '-' for stdin")->required();
  app.add_option("--out", o.out, "Child checkpoint to write")->required();
  app.add_option("--onnx", o.onnx,
                 "Also write the child as ONNX (opset 14, BatchNorm folded into the convolutions, input \"input\" "
                 "[batch, C, R, R], output \"logits\"), checked with the ONNX checker");
  app.add_option("--arch-out", o.arch_out,
                 "Also write the child's arch as a nas.arch file (e.g. --arch max written out)");
  app.add_option("--data", o.data, "Dataset directory (default: the one the supernet was trained on)");
  app.add_option("--calib-images", o.calib_images, "BN calibration images (default: the train spec's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cli::add_common_options(app, o.common);
}

void run_slice_tool(const SliceToolOptions& o) {
  cli::apply_common_options(o.common);
  check_output_path(o.out);
  if (!o.arch_out.empty()) check_output_path(o.arch_out);
  if (!o.onnx.empty()) {
    check_output_path(o.onnx);
    NAS_CHECK(exporter::onnx_available(), UsageError,
              "--onnx: this build has no ONNX support (install libonnx-dev and rebuild: scripts/setup.sh)");
  }
  auto loaded = supernet::load_supernet(o.supernet);
  auto& meta = loaded.meta;
  auto& net = loaded.net;
  spec::Arch arch = resolve_arch(o.arch, meta.space);
  auto d = load_checkpoint_data(meta.train, o.data, o.calib_images, meta.in_channels, meta.num_classes, meta.image_size);
  net->set_active(arch);
  const torch::Device device(o.common.device);
  net->to(device);
  eval::recalibrate_bn(net, d.train, d.calib, d.norm, meta.train.calib_batch_size, device);
  net->to(torch::kCPU);  // slicing and the agreement check run on the CPU
  families::ChildNet child = net->slice(arch);
  // The contract, checked on real images before anything is written: the child computes what the
  // supernet computes with the arch active.
  {
    torch::NoGradGuard g;
    net->eval();
    child->eval();
    std::vector<int64_t> idx(d.calib.begin(), d.calib.begin() + std::min<size_t>(d.calib.size(), 64));
    data::LoaderOptions lo;
    lo.batch_size = static_cast<int>(idx.size());
    lo.norm = d.norm;
    lo.prefetch = 0;
    auto b = data::make_batch(d.train, idx, lo, 0);
    torch::Tensor x = supernet::resize_input(b.x, arch.resolution);
    torch::Tensor diff = (net->forward(x) - child->forward(x)).abs().max();
    NAS_CHECK(diff.item<double>() < 1e-3, Error,
              "sliced child disagrees with the supernet (max |diff| " << diff.item<double>() << ")");
  }
  supernet::CheckpointMeta cm = meta;
  cm.type = "child";
  cm.arch = arch;
  cm.created.clear();
  cm.commit.clear();
  if (!o.onnx.empty()) write_output(o.onnx, families::export_onnx(child));  // side outputs first
  if (!o.arch_out.empty()) write_output(o.arch_out, spec::canonical_dump(spec::to_json(arch)) + "\n");
  supernet::save_child(o.out, child, cm);
  auto cost = net->cost(arch);
  spec::json out = {{"child", o.out},          {"hash", spec::arch_hash(arch)}, {"mflops", cost.mflops()},
                    {"params", cost.params},   {"arch", families::arch_summary(arch)}};
  log_info("wrote " + o.out + " (" + families::arch_summary(arch) + ")");
  std::cout << spec::compact_dump(out) << std::endl;
}

}  // namespace nas::app
