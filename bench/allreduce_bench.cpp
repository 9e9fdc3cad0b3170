// All-reduce latency of the tools' process group (lib/dist): run under a launcher (RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT); rank 0 prints microseconds per all-reduce of a float
// tensor of 64, 1024, 65536 and 1M elements (50 warm-up rounds, then ROUNDS timed).
// scripts/bench/distributed.sh runs it on 127.0.0.1.
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

#include "core/log.h"
#include "dist/dist.h"

int main(int argc, char** argv) {
  using namespace nas;
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 500;
  torch::set_num_threads(1);
  const auto env = dist::read_launch_env();
  if (!env.distributed()) {
    std::fprintf(stderr, "allreduce_bench: run it under a launcher (WORLD_SIZE > 1)\n");
    return 2;
  }
  dist::GroupOptions o;
  o.timeout_s = 60;
  auto g = dist::init(env, o);
  for (int64_t n : {64, 1024, 65536, 1 << 20}) {
    std::vector<at::Tensor> t{torch::ones({n})};
    for (int i = 0; i < 50; ++i) g->allreduce_sum(t, "warm-up");
    const double t0 = now_seconds();
    for (int i = 0; i < rounds; ++i) g->allreduce_sum(t, "timed");
    const double us = 1e6 * (now_seconds() - t0) / rounds;
    if (env.rank == 0) std::printf("all-reduce of %7lld floats over %d processes: %8.1f us\n", static_cast<long long>(n), g->size(), us);
  }
  return 0;
}
