#pragma once
// Data-parallel processes on LibTorch's c10d (DESIGN.md §4a): the launch environment (the
// torchrun convention, or SLURM / Open MPI variables with MASTER_ADDR/MASTER_PORT), a TCPStore
// rendezvous, a Gloo process group (plus NCCL for CUDA tensors where LibTorch has it) and the few
// collectives the tools use. With no launcher variables set, a tool runs as one process and
// nothing here is created.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace at {
class Tensor;
}

namespace nas::dist {

// A peer rank died or hung past the timeout, or the peers did not all join (exit 6).
class DistError : public Error {
 public:
  explicit DistError(const std::string& msg) : Error(msg, kExitDistributed) {}
};

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE=True)
  int restart = 0;           // torchrun's TORCHELASTIC_RESTART_COUNT: store keys of a restart differ
  std::string launcher;      // "torchrun", "slurm", "mpi"; "" for a single process
  bool distributed() const { return world_size > 1; }
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun); without
// RANK/WORLD_SIZE but with MASTER_ADDR set, OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK, or inside an srun
// step SLURM_PROCID/SLURM_STEP_NUM_TASKS/SLURM_LOCALID. None set: one process. UsageError (exit 2) naming the
// variable when one is missing or malformed. `getenv` defaults to the process environment.
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv = nullptr);

struct GroupOptions {
  double timeout_s = 1800;    // rendezvous and every collective
  std::string device = "cpu";  // "cuda": NCCL for CUDA tensors when LibTorch has it
  std::string backend = "auto";  // auto, gloo, nccl
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient all-reduce buckets (average_gradients)
};

class Group {
 public:
  struct Impl;
  explicit Group(std::unique_ptr<Impl> impl);
  ~Group();
  int rank() const;
  int size() const;
  const std::string& backend() const;  // of tensor collectives: "gloo" or "nccl"
  int64_t bucket_bytes() const;
  // Sums in place over ranks (one collective per tensor, issued together, then waited for).
  void allreduce_sum(std::vector<at::Tensor>& ts, const char* what);
  // Rank `root`'s values, in place.
  void broadcast(std::vector<at::Tensor>& ts, int root, const char* what);
  // Every rank's string, by rank.
  std::vector<std::string> allgather(const std::string& s, const char* what);
  // Whether any rank passed true.
  bool any(bool flag, const char* what);
  void barrier(const char* what);
  // UsageError naming `what` and the first rank that differs unless all ranks passed the same value.
  void check_same(const std::string& value, const std::string& what);
  // A collective failed: the group must not be torn down (peers may be gone); the process exits.
  bool failed() const;

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether this build has c10d (Gloo); without it a launch with WORLD_SIZE > 1 is refused.
bool available();

// Joins the job described by `env`: TCPStore rendezvous, then the process group, then a barrier.
// UsageError (exit 2) for a port in use; DistError (exit 6) when the peers do not all join within
// the timeout.
std::shared_ptr<Group> init(const LaunchEnv& env, const GroupOptions& o);

// The process's group, set by the tools at start-up; null in a single-process run.
Group* world();
void set_world(std::shared_ptr<Group> g);
int rank();        // 0 without a group
int world_size();  // 1 without a group
bool is_main();    // rank 0 (the one that writes files and logs)

// Averages the defined gradients of `params` over ranks: flattened into buckets of at most
// `bucket_bytes` (per dtype and device), all buckets' all-reduces issued, then waited for, then
// divided by the world size and copied back. Every rank must hold defined gradients for the same
// parameters (the children of a step are the same on every rank). Returns the seconds it took.
double average_gradients(Group& g, const std::vector<at::Tensor>& params, int64_t bucket_bytes);

}  // namespace nas::dist
