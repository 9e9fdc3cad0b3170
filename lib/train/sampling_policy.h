#pragma once
// The children of a training step, and the policies that draw its random children (issue 19):
// uniform over every decision; stratified by FLOPs, so that the middle of the cost range is trained
// as often as its ends; and AttentiveNAS's best-/worst-Pareto, which keep the best or worst of a
// few uniform draws, ranked by their loss on the step's batch.
#include <functional>
#include <vector>

#include "core/rng.h"
#include "spec/arch.h"
#include "spec/train_spec.h"
#include "supernet/supernet.h"

namespace nas::train {

// The loss of each candidate on the step's batch, without gradient (best-/worst-pareto only).
using CandidateLosses = std::function<std::vector<double>(const std::vector<spec::Arch>&)>;

// The children of one step, in the order their gradients are summed: the max child first (it
// teaches the others) and the min child second under the sandwich rule, then t.random_children
// drawn by t.child_policy; one random child under uniform sampling; the fixed child when training
// one arch. Random child i of a step is drawn from its own generator, seeded from (seed, step, i).
std::vector<spec::Arch> step_children(const supernet::Supernet& net, const spec::TrainSpec& t, int64_t step,
                                      const spec::Arch* fixed, const CandidateLosses& losses);

// One random child by t.child_policy. Ranking by the batch loss rather than by an accuracy
// predictor: it needs nothing trained beforehand, ranks with the weights of this very step, and
// serves every family; it costs t.candidates forward passes per child.
spec::Arch policy_child(const supernet::Supernet& net, const spec::TrainSpec& t, Rng& rng,
                        const CandidateLosses& losses);

}  // namespace nas::train
