#pragma once
// Checkpoints: a torch serialize archive with the model tensors, the optimizer state and a JSON
// metadata record (format version, type, embedded search space and train spec, arch for children,
// step, build commit). A child checkpoint needs no supernet to load.
#include <torch/torch.h>

#include <optional>
#include <string>

#include "families/modules.h"
#include "spec/arch.h"
#include "spec/search_space.h"
#include "spec/train_spec.h"
#include "supernet/checkpoint_meta.h"
#include "supernet/supernet.h"

namespace nas::supernet {

// The digest of `net`'s tensors (see CheckpointMeta::digest).
std::string tensors_digest(torch::nn::Module& net);



// Writes atomically (temp file + rename). `optimizer` may be null.
void save_supernet(const std::string& path, Supernet& net, const CheckpointMeta& meta,
                   torch::optim::Optimizer* optimizer);
void save_child(const std::string& path, families::ChildNet& net, const CheckpointMeta& meta);

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
  families::ChildNet net{nullptr};
};
LoadedChild load_child(const std::string& path);

}  // namespace nas::supernet
