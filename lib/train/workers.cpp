#include "train/workers.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

namespace nas::train {

struct WorkerPool::Shared {
  std::mutex mu;
  std::condition_variable wake;  // a new batch of tasks, or stop
  std::condition_variable done;  // the batch's last task finished, or a worker started
  const std::vector<std::function<void()>>* tasks = nullptr;
  size_t next = 0, finished = 0;
  uint64_t generation = 0;
  int started = 0;
  bool stop = false;
  std::vector<std::exception_ptr> errors;
  std::vector<std::thread> threads;
};

namespace {

// A worker thread: its own kernel thread count, then each batch of tasks until stopped.
void worker_loop(WorkerPool::Shared& s, int kernel_threads) {
  // LibTorch sets a new thread's kernel threads from its global setting at the thread's first
  // parallel operation: trigger that first, then set this thread's own. One thread at a time:
  // at::set_num_threads also clears oneDNN's primitive cache, which is not safe concurrently.
  std::unique_lock<std::mutex> lock(s.mu);
  (void)at::get_num_threads();
  at::set_num_threads(kernel_threads);
  ++s.started;
  s.done.notify_all();
  uint64_t seen = 0;
  for (;;) {
    s.wake.wait(lock, [&] { return s.stop || s.generation != seen; });
    if (s.stop) return;
    seen = s.generation;
    if (!s.tasks) continue;  // woken late: the other workers already ran the whole batch
    const size_t count = s.tasks->size();
    while (s.next < count) {
      const size_t i = s.next++;
      lock.unlock();
      try {
        (*s.tasks)[i]();
      } catch (...) {
        s.errors[i] = std::current_exception();
      }
      lock.lock();
      if (++s.finished == count) s.done.notify_all();
    }
  }
}

void rethrow_first(const std::vector<std::exception_ptr>& errors) {
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace

WorkerPool::WorkerPool(int workers, int kernel_threads)
    : workers_(std::max(1, workers)), shared_(std::make_unique<Shared>()) {
  if (workers_ == 1) return;
  const int caller_threads = at::get_num_threads();
  Shared& s = *shared_;
  try {
    for (int w = 0; w < workers_; ++w)
      s.threads.emplace_back([&s, k = std::max(1, kernel_threads)] { worker_loop(s, k); });
  } catch (...) {
    stop_threads();  // the threads already started, before `s` goes
    throw;
  }
  std::unique_lock<std::mutex> lock(s.mu);
  s.done.wait(lock, [&] { return s.started == workers_; });
  lock.unlock();
  // at::set_num_threads also set the global count that later threads start from: the caller's again.
  at::set_num_threads(caller_threads);
}

void WorkerPool::stop_threads() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stop = true;
  }
  shared_->wake.notify_all();
  for (auto& t : shared_->threads) t.join();
  shared_->threads.clear();
}

WorkerPool::~WorkerPool() {
  if (shared_ && !shared_->threads.empty()) stop_threads();
}

void WorkerPool::run(const std::vector<std::function<void()>>& tasks) {
  std::vector<std::exception_ptr> errors(tasks.size());
  if (workers_ == 1 || tasks.size() <= 1) {
    for (size_t i = 0; i < tasks.size(); ++i) {
      try {
        tasks[i]();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
    rethrow_first(errors);
    return;
  }
  Shared& s = *shared_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.tasks = &tasks;
  s.next = s.finished = 0;
  s.errors = std::move(errors);
  ++s.generation;
  s.wake.notify_all();
  s.done.wait(lock, [&] { return s.finished == tasks.size(); });
  s.tasks = nullptr;
  errors = std::move(s.errors);
  lock.unlock();
  rethrow_first(errors);
}

struct ShardGroup::State {
  explicit State(int n) : size(n), calls(static_cast<size_t>(n), 0) {
    for (auto& parity : slots) parity.resize(static_cast<size_t>(n));
  }
  int size;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::exception_ptr error;
  // Two sets of slots, used by alternate calls: a member cannot write a set again before every
  // member has passed the next call's barrier, i.e. has finished reading it.
  std::vector<torch::Tensor> slots[2];
  std::vector<uint64_t> calls;  // per member
};

ShardGroup::ShardGroup(int size) : state_(std::make_unique<State>(size)) {}
ShardGroup::~ShardGroup() = default;

torch::Tensor ShardGroup::sum(const torch::Tensor& t, int member) {
  State& s = *state_;
  const size_t m = static_cast<size_t>(member);
  auto& slots = s.slots[s.calls[m]++ & 1u];
  slots[m] = t;
  {
    // Blocking, not spinning: waiting threads leave their core to the other workers and to any
    // other process (spinning for up to 200 us first made no difference in a one-off trial, idle or
    // beside a busy loop: docs/PERFORMANCE.md).
    std::unique_lock<std::mutex> lock(s.mu);
    if (s.error) std::rethrow_exception(s.error);
    const uint64_t gen = s.generation;
    if (++s.arrived == s.size) {
      s.arrived = 0;
      ++s.generation;
      s.cv.notify_all();
    } else {
      s.cv.wait(lock, [&] { return s.generation != gen || s.error; });
      if (s.generation == gen) std::rethrow_exception(s.error);
    }
  }
  torch::NoGradGuard ng;
  torch::Tensor total = slots[0].clone();
  for (size_t i = 1; i < slots.size(); ++i) total.add_(slots[i]);
  return total;
}

void ShardGroup::abort(std::exception_ptr error) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!state_->error) state_->error = std::move(error);
  state_->cv.notify_all();
}

ThreadsScope::ThreadsScope(int n) : previous_(at::get_num_threads()) { at::set_num_threads(n); }
ThreadsScope::~ThreadsScope() { at::set_num_threads(previous_); }

int default_workers(int requested, int threads, int64_t batch_rows) {
  constexpr int kMaxDefault = 8;
  constexpr int64_t kRowsPerDefaultWorker = 16, kRowsPerWorker = 2;
  const int64_t cap = requested > 0 ? batch_rows / kRowsPerWorker
                                    : std::min<int64_t>(kMaxDefault, batch_rows / kRowsPerDefaultWorker);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(requested > 0 ? requested : threads, cap)));
}

}  // namespace nas::train
