#pragma once
// Worker threads for a training step (issue 18): each trains every child of the step on its shard of
// the batch, with synchronized BN over the shards (ShardGroup), on one LibTorch thread. OpenMP's
// threads over the whole batch spin while they wait, fighting any other process for the cores
// (beside a busy loop they kept 0.28x of their idle speed, these workers 0.61x: they block); idle,
// the two measured on par on 2 cores (docs/PERFORMANCE.md). The step's maths do not depend on the
// worker count, to float rounding (sandwich_step).
#include <torch/torch.h>

#include <exception>
#include <functional>
#include <memory>
#include <vector>

namespace nas::train {

class WorkerPool {
 public:
  // `workers` threads, each running LibTorch's kernels on `kernel_threads` threads. One worker
  // starts no thread: its tasks run on the calling thread, with the caller's kernel threads.
  WorkerPool(int workers, int kernel_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int workers() const { return workers_; }

  // Runs every task once and returns when all have finished; rethrows the exception of the
  // lowest-index task that threw. Tasks may wait for each other (the shards meet at every BN
  // layer): with at most workers() tasks, each runs on a thread of its own at the same time.
  void run(const std::vector<std::function<void()>>& tasks);

  struct Shared;  // the threads' state (workers.cpp)

 private:
  void stop_threads();
  int workers_;
  std::unique_ptr<Shared> shared_;
};

// The in-process group of a step's shard workers: sums a tensor over them for synchronized BN
// (nn::set_batchnorm_sync), every member getting the same bits (the members' tensors added in member
// order). A member that fails aborts the group, and the others' waits then rethrow its error.
class ShardGroup {
 public:
  explicit ShardGroup(int size);
  ~ShardGroup();
  // Blocks until every member has contributed its `t` (the same shape on every member) to this call.
  torch::Tensor sum(const torch::Tensor& t, int member);
  void abort(std::exception_ptr error);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// LibTorch's kernel threads on the calling thread set to `n` while alive, then restored. Tiny models
// (the search's GP and predictor MLPs, the training thread beside its workers) gain nothing from
// threading their kernels and lose much on a busy machine: OpenMP's idle threads spin.
class ThreadsScope {
 public:
  explicit ThreadsScope(int n);
  ~ThreadsScope();
  ThreadsScope(const ThreadsScope&) = delete;
  ThreadsScope& operator=(const ThreadsScope&) = delete;

 private:
  int previous_;
};

// The worker count for batches of `batch_rows` on `threads` cores: `requested` when > 0 (at most one
// per 2 rows: BN needs 2 values), else one per core, at most 8 and one per 16 rows (each worker
// keeps a copy of the gradients, and meets the others at every BN layer).
int default_workers(int requested, int threads, int64_t batch_rows);

}  // namespace nas::train
