#pragma once
// Checkpoints: a torch serialize archive with the model tensors, the optimizer state and a JSON
// metadata record (format version, type, embedded search space and train spec, arch for children,
// step, build commit). A child checkpoint needs no supernet to load.
#include <torch/torch.h>

#include <optional>
#include <string>

#include "nn/child.h"
#include "spec/arch.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/supernet.h"

namespace nas::supernet {

inline constexpr const char* kCheckpointFormat = "nas.checkpoint";
inline constexpr int kCheckpointVersion = 1;

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
};

// The digest of `net`'s tensors (see CheckpointMeta::digest).
std::string tensors_digest(torch::nn::Module& net);

spec::json meta_to_json(const CheckpointMeta& m);

// Writes atomically (temp file + rename). `optimizer` may be null.
void save_supernet(const std::string& path, Supernet& net, const CheckpointMeta& meta,
                   torch::optim::Optimizer* optimizer);
void save_child(const std::string& path, nn::ChildNet& net, const CheckpointMeta& meta);

// Reads only the metadata (CheckpointError for a missing, corrupt or newer file).
CheckpointMeta read_checkpoint_meta(const std::string& path);

struct LoadedSupernet {
  CheckpointMeta meta;
  Supernet net{nullptr};
};
// CheckpointError when the file is not a supernet checkpoint. Loads the optimizer state when given.
LoadedSupernet load_supernet(const std::string& path, torch::optim::Optimizer* optimizer = nullptr);
// Restores weights and optimizer state into an existing net (for --resume).
CheckpointMeta restore_supernet(const std::string& path, Supernet& net, torch::optim::Optimizer* optimizer);

struct LoadedChild {
  CheckpointMeta meta;
  nn::ChildNet net{nullptr};
};
LoadedChild load_child(const std::string& path);

}  // namespace nas::supernet
