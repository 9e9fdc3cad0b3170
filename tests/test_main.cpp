#if !defined(NAS_CATCH3)
#define CATCH_CONFIG_RUNNER
#endif
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "catch.h"
#include "data/loader.h"
#include "eval/evaluate.h"
#include "helpers.h"
#include "train/workers.h"
#include "supernet/checkpoint.h"
#include "supernet/supernet.h"

bool nas::test::cuda_available() { return torch::cuda::is_available(); }

// nas-benchmark --threads 1 scores these images in these batches on one thread.
double nas::test::child_top1(const std::string& ckpt, const nas::data::ImageSet& set, int64_t n) {
  auto child = nas::supernet::load_child(ckpt);
  nas::train::ThreadsScope one_thread(1);
  torch::NoGradGuard no_grad;
  child.net->eval();
  nas::data::LoaderOptions o;
  o.norm.mean = child.meta.train.data.mean;
  o.norm.std = child.meta.train.data.std;
  const int64_t batch = nas::eval::default_eval_batch(torch::kCPU);
  int64_t correct = 0;
  for (int64_t first = 0; first < n; first += batch) {
    std::vector<int64_t> idx;
    for (int64_t i = first; i < std::min(n, first + batch); ++i) idx.push_back(i);
    torch::Tensor x = nas::supernet::resize_input(nas::data::make_batch(set, idx, o, 0).x, child.meta.arch->resolution);
    torch::Tensor pred = child.net->forward(x).argmax(1).contiguous();
    auto p = pred.accessor<int64_t, 1>();
    for (size_t k = 0; k < idx.size(); ++k) correct += p[static_cast<int64_t>(k)] == set.labels[idx[k]];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

// ctest runs "[cuda]" on its own; exit code 4 tells ctest it was skipped on a machine without a GPU.
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "[cuda]" && !torch::cuda::is_available()) {
      std::printf("[cuda] tests skipped: no CUDA device\n");
      return 4;
    }
  }
  torch::set_num_threads(2);
  return Catch::Session().run(argc, argv);
}
