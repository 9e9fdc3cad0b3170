#pragma once
// A checkpoint's metadata record (torch-free, so that it can be fuzzed without LibTorch): format
// version, type, the embedded search space and train spec, the arch of a child, progress and the
// tensors' digests. supernet/checkpoint.h reads and writes the archives around it.
#include <optional>
#include <string>

#include "spec/arch.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"

namespace nas::supernet {

inline constexpr const char* kCheckpointFormat = "nas.checkpoint";
// 2 (2026-12): the digests (tensors_fnv1a64, optimizer_fnv1a64) and the train spec's keys sync_bn,
// lr_scaling, reference_batch, on_nonfinite_loss and max_skipped_steps, which a version-1 reader
// refuses as unknown keys. Version 1 (none of them) still loads.
inline constexpr int kCheckpointVersion = 2;

struct CheckpointMeta {
  std::string type;  // "supernet" or "child"
  spec::SearchSpace space;
  spec::TrainSpec train;
  int in_channels = 1;
  int num_classes = 10;
  int image_size = 28;      // side of the images the model was trained on
  int64_t step = 0;         // optimizer steps done
  int64_t total_steps = 0;  // planned
  bool finished = false;
  std::optional<spec::Arch> arch;  // children only
  std::string commit;
  std::string created;
  // FNV-1a of every parameter's and buffer's name and bytes, in module order, as 16 hex digits:
  // set when saving, checked when loading (the zip reader checks no CRC, so a flipped byte would
  // otherwise load silently). Empty in checkpoints written before it existed: not checked.
  std::string digest;
  std::string optimizer_digest;  // the same over the optimizer state (supernets saved with one)
  // A fine-tune (nas-train-supernet --init-from): the supernet checkpoint its weights started from,
  // and that checkpoint's tensor digest. Empty for supernets and from-scratch runs.
  std::string init_from;
  std::string init_digest;
  // Training seconds over every sitting of the run up to this checkpoint (0 in older checkpoints).
  double elapsed_s = 0;
};


spec::json meta_to_json(const CheckpointMeta& m);
// Parses a metadata record; SpecError or CheckpointError naming `path` and the field when it is
// not one this build can read (the archive reader turns both into exit 4).
CheckpointMeta meta_from_json(const spec::json& j, const std::string& path);

}  // namespace nas::supernet
