#if !defined(NAS_CATCH3)
#define CATCH_CONFIG_RUNNER
#endif
#include <torch/torch.h>

#include <string>

#include "catch.h"
#include "helpers.h"

bool nas::test::cuda_available() { return torch::cuda::is_available(); }

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
