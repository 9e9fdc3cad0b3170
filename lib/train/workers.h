#pragma once
// Worker threads for a training step (issue 18): each trains every child of the step on its shard of
// the batch, with synchronized BN over the shards (ShardGroup), on one LibTorch thread. On a few CPU
// cores, intra-op threading of these small tensors scales worse (2 threads: 1.3-1.6x one) than
// shards (2 processes: 1.8-1.9x), and its OpenMP threads spin while waiting, fighting any other
// process for the cores; these workers wait by blocking. The step's maths do not depend on the
// worker count to float rounding (sandwich_step).
#include <torch/torch.h>

#include <exception>
#include <functional>
#include <memory>
#include <vector>

namespace nas::train {

class WorkerPool {
 public:
  // `workers` threads, each running LibTorch's kernels on `kernel_threads` threads. One worker runs
  // the tasks on the calling thread, with its own kernel threads, and starts no thread.
  WorkerPool(int workers, int kernel_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int workers() const { return workers_; }
  int kernel_threads() const { return kernel_threads_; }

  // Runs every task once and returns when all have finished. Tasks are taken in index order, so a
  // task may wait for a lower-index one (the sandwich's students wait for the teacher's output).
  // Rethrows the exception of the lowest-index task that threw, after all have finished.
  void run(const std::vector<std::function<void()>>& tasks);

 private:
  struct Shared;
  int workers_, kernel_threads_;
  std::unique_ptr<Shared> shared_;
};

// The in-process group of a step's shard workers: sums a tensor over them for synchronized BN
// (nn::set_batchnorm_sync), every member getting the same bits (the members' tensors added in member
// order). A member that fails aborts the group, and the others' waits then rethrow its error.
class ShardGroup {
 public:
  explicit ShardGroup(int size);
  ~ShardGroup();
  int size() const;
  // Blocks until every member has contributed its `t` (the same shape on every member) to this call.
  torch::Tensor sum(const torch::Tensor& t, int member);
  void abort(std::exception_ptr error);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The worker count on `threads` cores: `requested` when > 0, else one per core; at most `max_workers`
// (a shard needs 2 images for batch norm).
int default_workers(int requested, int threads, int max_workers);

}  // namespace nas::train
