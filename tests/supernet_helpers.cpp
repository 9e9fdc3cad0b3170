#include "supernet_helpers.h"
#include "nn/elastic.h"

#include <torch/torch.h>

namespace nas::test {

void randomize_bn(supernet::Supernet& net) {
  torch::NoGradGuard g;
  for (auto& m : net->modules(false)) {
    if (auto* bn = m->as<nn::DynamicBatchNorm2dImpl>()) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.2, 0.2);
    }
  }
}

}  // namespace nas::test
