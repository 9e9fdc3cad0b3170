// Distributed training and search (lib/dist): the launch environment, the rendezvous and its
// errors, 2 processes on 127.0.0.1 against 1, a killed or hung rank, SIGTERM, resume with another
// number of processes, and the distributed search.
#include <torch/torch.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>

#include "catch.h"
#include "core/error.h"
#include "data/idx.h"
#include "data/loader.h"
#include "dist/dist.h"
#include "families/documents.h"
#include "helpers.h"
#include "nn/elastic.h"
#include "spec/search_result.h"
#include "spec/train_spec.h"
#include "supernet/checkpoint.h"
#include "train/trainer.h"

using namespace nas;

namespace {

// A port that was free a moment ago (the kernel's choice).
int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(s);
  return ntohs(a.sin_port);
}

// Whether this build has c10d (a LibTorch without Gloo headers has not): else WARN and skip.
bool dist_available() {
  if (dist::available()) return true;
  WARN("this build has no distributed support (no Gloo headers): skipped");
  return false;
}

dist::LaunchEnv env_of(const std::map<std::string, std::string>& vars) {
  return dist::read_launch_env([&](const char* k) -> const char* {
    auto it = vars.find(k);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::string env_error(const std::map<std::string, std::string>& vars) {
  return test::error_of([&] { env_of(vars); });
}

// A tiny training run: 20 steps of 64 images, sync BN, no dropout (whose masks are drawn per
// process), a checkpoint every 5 steps. At lr 0.05 the sandwich over this tiny space is chaotic:
// one process on 1 thread and on 2 threads end 20 steps up to 6e-3 apart (float sums in another
// order, amplified); at 0.01, under 1e-3 (BN running variances: 1.3e-3).
std::string write_train_spec(const std::string& dir, int64_t train_limit = 1280, bool sync_bn = true) {
  std::string p = dir + "/train.yaml";
  test::spit(p, "kind: nas.train\nschema_version: 1\ndata:\n  path: " + std::string(test::kFmnist) +
                    "\n  validation_images: 500\n  train_limit: " + std::to_string(train_limit) +
                    "\nepochs: 1\nbatch_size: 64\noptimizer: {lr: 0.01}\nsandwich: {random_children: 1}\n"
                    "sync_bn: " + (sync_bn ? "true" : "false") + "\ndropout: 0\ncheckpoint_every_steps: 5\n"
                    "log_every_steps: 1\nbn_calibration: {images: 128, batch_size: 64}\n");
  return p;
}

// Runs `cmd` as a job of `n` processes on 127.0.0.1 (rank r's stdout/stderr in dir/r<r>.out/.err,
// its exit code in dir/r<r>.code); returns rank 0's result.
test::RunResult run_ranks(const std::string& dir, int n, const std::string& cmd, int port) {
  std::string script = "export MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                       " WORLD_SIZE=" + std::to_string(n) + "\n";
  for (int r = 1; r < n; ++r)
    script += "(RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) + " " + cmd + " > " + dir + "/r" +
              std::to_string(r) + ".out 2> " + dir + "/r" + std::to_string(r) + ".err; echo $? > " + dir + "/r" +
              std::to_string(r) + ".code) &\n";
  script += "RANK=0 LOCAL_RANK=0 " + cmd + "\nc=$?\nwait\nexit $c\n";
  test::spit(dir + "/job.sh", script);
  return test::run_cmd("bash " + dir + "/job.sh");
}

int rank_code(const std::string& dir, int r) { return std::stoi(test::slurp(dir + "/r" + std::to_string(r) + ".code")); }

// Largest |a - b| over the parameters and over the buffers (BN running statistics) of two supernet
// checkpoints, and whether the parameters are allclose(rtol, atol).
struct Diff {
  double params = 0, buffers = 0;
  std::string worst;  // the tensor with the largest difference
  bool close = true;
  int tensors = 0;
};
Diff compare_supernets(const std::string& a, const std::string& b, double rtol = 1e-3, double atol = 1e-3) {
  auto x = supernet::load_supernet(a), y = supernet::load_supernet(b);
  Diff d;
  double worst = 0;
  auto cmp = [&](const torch::OrderedDict<std::string, torch::Tensor>& u,
                 const torch::OrderedDict<std::string, torch::Tensor>& v, double& largest, bool params) {
    REQUIRE(u.size() == v.size());
    for (const auto& item : u) {
      const torch::Tensor& t = item.value();
      const torch::Tensor& s = v[item.key()];
      double m = (t - s).abs().max().item<double>();
      largest = std::max(largest, m);
      if (m > worst) {
        worst = m;
        d.worst = item.key();
      }
      if (params) d.close = d.close && torch::allclose(t, s, rtol, atol);
      ++d.tensors;
    }
  };
  cmp(x.net->named_parameters(), y.net->named_parameters(), d.params, true);
  cmp(x.net->named_buffers(), y.net->named_buffers(), d.buffers, false);
  return d;
}

}  // namespace

TEST_CASE("launch environment: torchrun, SLURM and Open MPI variables; missing or bad ones named", "[dist]") {
  CHECK_FALSE(env_of({}).distributed());
  CHECK_FALSE(env_of({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}}).distributed());  // srun without MASTER_ADDR
  CHECK_FALSE(env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).distributed());
  auto t = env_of({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                   {"TORCHELASTIC_RESTART_COUNT", "2"}});
  CHECK(t.distributed());
  CHECK(t.launcher == "torchrun");
  CHECK(t.rank == 1);
  CHECK(t.world_size == 4);
  CHECK(t.local_rank == 1);
  CHECK(t.local_world_size == 2);
  CHECK(t.master_addr == "node0");
  CHECK(t.master_port == 29500);
  CHECK(t.agent_store);
  CHECK(t.restart == 2);
  // An srun step (SLURM_STEP_NUM_TASKS); its batch script has SLURM_PROCID but is one process.
  CHECK_FALSE(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"MASTER_ADDR", "n1"}}).distributed());
  auto s = env_of({{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_LOCALID", "1"},
                   {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "1234"}});
  CHECK(s.launcher == "slurm");
  CHECK(s.rank == 5);
  CHECK(s.world_size == 8);
  CHECK(s.local_world_size == 4);
  auto m = env_of({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "3"}, {"MASTER_ADDR", "h"},
                   {"MASTER_PORT", "4000"}});
  CHECK(m.launcher == "mpi");
  CHECK(m.rank == 2);
  // mpirun under SLURM: its ranks inherit the srun-started daemons' SLURM variables; Open MPI's win.
  auto ms = env_of({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"SLURM_PROCID", "0"},
                    {"SLURM_STEP_NUM_TASKS", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "4000"}});
  CHECK(ms.launcher == "mpi");
  CHECK(ms.rank == 3);
  CHECK(ms.world_size == 4);
  CHECK(m.world_size == 3);
  CHECK_FALSE(m.agent_store);

  CHECK_THAT(env_error({{"RANK", "0"}}), Catch::Matchers::Contains("WORLD_SIZE is not set"));
  CHECK_THAT(env_error({{"WORLD_SIZE", "2"}}), Catch::Matchers::Contains("RANK is not set"));
  CHECK_THAT(env_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}),
             Catch::Matchers::Contains("MASTER_ADDR is not set"));
  CHECK_THAT(env_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}),
             Catch::Matchers::Contains("MASTER_PORT=: expected an integer in [1, 65535]"));
  CHECK_THAT(env_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "99999"}}),
             Catch::Matchers::Contains("MASTER_PORT=99999: expected an integer in [1, 65535]"));
  CHECK_THAT(env_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "5"}}),
             Catch::Matchers::Contains("RANK=2: expected an integer in [0, 1]"));
  CHECK_THAT(env_error({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), Catch::Matchers::Contains("RANK=x"));
  CHECK_THAT(env_error({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "two"}, {"MASTER_ADDR", "h"}}),
             Catch::Matchers::Contains("SLURM_STEP_NUM_TASKS=two: expected an integer"));
  CHECK_THAT(env_error({{"OMPI_COMM_WORLD_RANK", "0"}, {"MASTER_ADDR", "h"}}),
             Catch::Matchers::Contains("OMPI_COMM_WORLD_SIZE is not set"));
}

TEST_CASE("data parallel pieces: shards of a batch are the batch; the LR scaling rule", "[dist]") {
  data::ImageSet set = data::load_mnist_dir(test::kFmnist, /*train=*/false);
  std::vector<int64_t> idx(200);
  for (int64_t i = 0; i < 200; ++i) idx[i] = i;
  data::LoaderOptions lo;
  lo.batch_size = 30;
  lo.shuffle = true;
  lo.crop_padding = 2;
  lo.hflip = true;
  lo.seed = 7;
  lo.prefetch = 0;
  data::BatchLoader whole(set, idx, lo);
  std::vector<data::Batch> full;
  while (auto b = whole.next()) full.push_back(*b);
  for (int shards : {2, 3, 4}) {
    std::vector<std::vector<data::Batch>> parts(shards);
    for (int s = 0; s < shards; ++s) {
      data::LoaderOptions so = lo;
      so.shard = s;
      so.shards = shards;
      data::BatchLoader l(set, idx, so);
      while (auto b = l.next()) parts[s].push_back(*b);
    }
    for (size_t b = 0; b < full.size(); ++b) {
      std::vector<torch::Tensor> xs, ys;
      for (int s = 0; s < shards; ++s) {
        xs.push_back(parts[s][b].x);
        ys.push_back(parts[s][b].y);
      }
      CHECK(torch::equal(torch::cat(xs), full[b].x));  // augmentation included
      CHECK(torch::equal(torch::cat(ys), full[b].y));
    }
  }
  spec::TrainSpec t;
  t.lr = 0.1;
  t.batch_size = 1024;
  t.reference_batch = 256;
  CHECK(spec::scaled_lr(t) == 0.1);
  t.lr_scaling = "linear";
  CHECK(spec::scaled_lr(t) == Approx(0.4));
  t.lr_scaling = "sqrt";
  CHECK(spec::scaled_lr(t) == Approx(0.2));
  t.schedule = "constant";
  t.warmup_epochs = 0;
  CHECK(train::lr_at(t, 10, 100, 10) == Approx(0.2));
  auto doc = spec::to_json(t);
  CHECK(spec::train_spec_from_json(doc, "x").lr_scaling == "sqrt");
  doc["optimizer"]["lr_scaling"] = "cubic";
  CHECK_THAT(test::error_of([&] { spec::train_spec_from_json(doc, "x.yaml"); }),
             Catch::Matchers::Contains("optimizer.lr_scaling"));
}

TEST_CASE("rendezvous errors: missing variables exit 2, a port in use exits 2, a peer that never comes exits 6",
          "[dist]") {
  if (!dist_available()) return;
  std::string d = test::temp_dir("rdv");
  std::string tr = write_train_spec(d);
  const std::vector<std::string> train = {
      "--space", test::test_data("tiny-space.yaml"), "--train", tr, "--threads", "1", "--dist-timeout", "4"};
  auto no_addr =
      test::run_cmd("RANK=0 WORLD_SIZE=2 " + test::tool_line("nas-train-supernet", train, {"--out", d + "/a"}));
  CHECK(no_addr.code == 2);
  CHECK_THAT(no_addr.err, Catch::Matchers::Contains("MASTER_ADDR is not set"));
  CHECK_FALSE(test::exists(d + "/a"));
  auto no_world = test::run_cmd("RANK=1 " + test::tool_line("nas-train-supernet", train, {"--out", d + "/a"}));
  CHECK(no_world.code == 2);
  CHECK_THAT(no_world.err, Catch::Matchers::Contains("WORLD_SIZE is not set"));
  auto slice =
      test::run_cmd("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " +
                    test::tool_line("nas-slice", {"--supernet", "x", "--arch", "max", "--out", d + "/c.ckpt"}));
  CHECK(slice.code == 2);
  CHECK_THAT(slice.err, Catch::Matchers::Contains("this tool runs as one process"));

  // Rank 0 of a 2-process job whose rank 1 never starts: it holds the port meanwhile, so a second
  // job on the same port is refused.
  const int port = free_port();
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " WORLD_SIZE=2 RANK=0 ";
  test::spit(d + "/lonely.sh",
             "start=$(date +%s.%N)\n" + env + test::tool_line("nas-train-supernet", train) + " --out " + d +
                 "/lonely > " + d + "/lonely.out 2> " + d + "/lonely.err\necho $? > " + d +
                 "/lonely.code\nend=$(date +%s.%N)\nawk \"BEGIN {print $end - $start}\" > " + d + "/lonely.seconds\n");
  test::run_cmd("bash " + d + "/lonely.sh & sleep 1.5; " + env + test::tool_line("nas-train-supernet", train) +
                " --out " + d + "/second > " + d + "/second.out 2> " + d + "/second.err; echo $? > " + d +
                "/second.code; wait");
  CHECK(test::slurp(d + "/second.code") == "2\n");
  CHECK_THAT(test::slurp(d + "/second.err"),
             Catch::Matchers::Contains("MASTER_PORT=" + std::to_string(port) + ": the port is in use"));
  CHECK(test::slurp(d + "/lonely.code") == "6\n");
  CHECK_THAT(test::slurp(d + "/lonely.err"), Catch::Matchers::Contains("not all WORLD_SIZE=2 ranks joined"));
  double waited = std::stod(test::slurp(d + "/lonely.seconds"));
  CHECK(waited >= 3.5);
  CHECK(waited < 30);
  CHECK_FALSE(test::exists(d + "/lonely/supernet.ckpt"));
  // Rank 1 with no rank 0 to meet.
  auto orphan =
      test::run_cmd("MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2 RANK=1 " +
                    test::tool_line("nas-train-supernet", train, {"--out", d + "/orphan"}));
  CHECK(orphan.code == 6);
  CHECK_THAT(orphan.err, Catch::Matchers::Contains("[rank 1]: error: rank 1: no rendezvous at 127.0.0.1:"));
}

TEST_CASE("2 processes on 127.0.0.1 match 1 process on the same global batch after 20 steps; resume on another "
          "world size; a distributed search equals a 1-process one",
          "[dist]") {
  if (!dist_available()) return;
  std::string d = test::temp_dir("ddp");
  std::string tr = write_train_spec(d);
  const std::vector<std::string> train = {
      "--space", test::test_data("tiny-space.yaml"), "--train", tr, "--threads", "1", "--dist-timeout", "60"};
  auto one = test::tool("nas-train-supernet", train, {"--out", d + "/one"});
  INFO(one.err);
  REQUIRE(one.code == 0);
  auto two = run_ranks(d, 2, test::tool_line("nas-train-supernet", train) + " --out " + d + "/two", free_port());
  INFO(two.err << test::slurp(d + "/r1.err"));
  REQUIRE(two.code == 0);
  CHECK(rank_code(d, 1) == 0);
  CHECK(test::slurp(d + "/r1.out").empty());  // rank 0 reports
  auto summary = spec::json::parse(two.out);
  CHECK(summary["world_size"] == 2);
  CHECK(summary["allreduce_seconds"].get<double>() > 0);
  CHECK_THAT(two.err, Catch::Matchers::Contains("data parallel: 2 processes (gloo), 32-32 images each"));
  // Float sums in another order (per-process batch norm sums, the loss over two halves): equal to
  // about 1e-6 after one step; after 20, parameters allclose and BN statistics within a few times
  // the noise floor: one process on 2 threads against 1 (see write_train_spec).
  // The floor: one child at a time on 2 LibTorch threads (--workers 1, the default before workers).
  auto threads2 = test::tool("nas-train-supernet", {"--space", test::test_data("tiny-space.yaml"), "--train", tr,
                                                    "--threads", "2", "--workers", "1", "--out", d + "/threads2"});
  REQUIRE(threads2.code == 0);
  Diff floor = compare_supernets(d + "/one/supernet.ckpt", d + "/threads2/supernet.ckpt");
  // The default on 2 threads: 2 workers of one LibTorch thread, each on half of every batch with BN
  // synchronized between them: one process's run to float rounding, like 2 processes.
  auto workers2 = test::tool("nas-train-supernet", {"--space", test::test_data("tiny-space.yaml"), "--train", tr,
                                                    "--threads", "2", "--out", d + "/workers2"});
  INFO(workers2.err);
  REQUIRE(workers2.code == 0);
  CHECK_THAT(workers2.err, Catch::Matchers::Contains("workers: 2 shards of every batch at once, 1 LibTorch thread(s) each"));
  Diff shards = compare_supernets(d + "/one/supernet.ckpt", d + "/workers2/supernet.ckpt");
  INFO("2 workers against 1: max |difference| " << shards.params << " (parameters), " << shards.buffers << " (buffers)");
  CHECK(shards.tensors > 50);
  CHECK(shards.close);
  CHECK(shards.buffers <= 10 * std::max(floor.buffers, 1e-4));
  Diff diff = compare_supernets(d + "/one/supernet.ckpt", d + "/two/supernet.ckpt");
  INFO("max |difference| " << diff.params << " (parameters), " << diff.buffers << " (buffers) in " << diff.worst
                           << "; 1 against 2 threads: " << floor.params << ", " << floor.buffers);
  CHECK(diff.tensors > 50);
  CHECK(diff.close);
  CHECK(diff.buffers <= 10 * std::max(floor.buffers, 1e-4));
  // The first step's loss (before any update): the same to float rounding.
  auto first = [](const std::string& file) {
    std::string m = test::slurp(file);
    return spec::json::parse(m.substr(0, m.find('\n')));
  };
  const double loss1 = first(d + "/one/metrics.jsonl")["loss_max"].get<double>();
  CHECK(std::abs(first(d + "/two/metrics.jsonl")["loss_max"].get<double>() - loss1) < 1e-5);
  CHECK(first(d + "/two/metrics.jsonl")["world_size"] == 2);

  // Without synchronized BN each process normalizes its own 32 images: not the same run.
  std::string d2 = test::temp_dir("ddp-local-bn");
  std::string tr2 = write_train_spec(d2, 1280, /*sync_bn=*/false);
  auto local = run_ranks(d2, 2,
                         test::tool_line("nas-train-supernet", {"--space", test::test_data("tiny-space.yaml"),
                                                                "--train", tr2, "--threads", "1", "--dist-timeout",
                                                                "60", "--stop-after-steps", "2", "--out", d2 + "/two"}),
                         free_port());
  REQUIRE(local.code == 0);
  // Its first loss already differs (BN statistics of 32 images, not 64): about 7e-4.
  CHECK(std::abs(first(d2 + "/two/metrics.jsonl")["loss_max"].get<double>() - loss1) > 1e-4);

  // 10 steps on 2 processes, the other 10 resumed on 1: the same run.
  auto half =
      run_ranks(d, 2, test::tool_line("nas-train-supernet", train) + " --out " + d + "/switch --stop-after-steps 10",
                free_port());
  REQUIRE(half.code == 0);
  CHECK(supernet::read_checkpoint_meta(d + "/switch/supernet.ckpt").step == 10);
  auto rest = test::tool("nas-train-supernet", {"--out", d + "/switch", "--resume", "--threads", "1"});
  INFO(rest.err);
  REQUIRE(rest.code == 0);
  Diff sw = compare_supernets(d + "/one/supernet.ckpt", d + "/switch/supernet.ckpt");
  INFO("max |difference| after switching " << sw.params << ", " << sw.buffers << " in " << sw.worst);
  CHECK(sw.close);
  CHECK(sw.buffers <= 10 * std::max(floor.buffers, 1e-4));
  // ... and 1 process resumed on 3 (batch 64: shares of 21, 21 and 22 images).
  auto p1 = test::tool("nas-train-supernet", train, {"--out", d + "/grow", "--stop-after-steps", "10"});
  REQUIRE(p1.code == 0);
  auto p3 = run_ranks(d, 3, test::tool_line("nas-train-supernet", {"--out", d + "/grow", "--resume", "--threads", "1"}),
                      free_port());
  INFO(p3.err);
  REQUIRE(p3.code == 0);
  CHECK_THAT(p3.err, Catch::Matchers::Contains("21-22 images each"));
  Diff gr = compare_supernets(d + "/one/supernet.ckpt", d + "/grow/supernet.ckpt");
  INFO("max |difference| after growing " << gr.params << ", " << gr.buffers << " in " << gr.worst);
  CHECK(gr.close);
  CHECK(gr.buffers <= 10 * std::max(floor.buffers, 1e-4));

  // The search over the trained supernet: inherited weights, children shared over 2 ranks.
  const std::vector<std::string> search = {
      "--supernet", d + "/one/supernet.ckpt", "--strategy", "random",    "--budget", "6", "--val-images",
      "200",        "--calib-images",         "128",        "--threads", "1"};
  auto s1 = test::tool("nas-search", search, {"--out", d + "/s1.json"});
  INFO(s1.err);
  REQUIRE(s1.code == 0);
  auto s2 = run_ranks(
      d, 2,
      test::tool_line("nas-search", search) + " --out " + d + "/s2.json --metrics " + d + "/s2.jsonl --dist-timeout 60",
      free_port());
  INFO(s2.err << test::slurp(d + "/r1.err"));
  REQUIRE(s2.code == 0);
  CHECK(rank_code(d, 1) == 0);
  auto a = families::load_search_result(d + "/s1.json"), b = families::load_search_result(d + "/s2.json");
  REQUIRE(a.candidates.size() == b.candidates.size());
  for (size_t i = 0; i < a.candidates.size(); ++i) {
    CHECK(a.candidates[i].hash == b.candidates[i].hash);
    CHECK(a.candidates[i].val_acc == b.candidates[i].val_acc);
  }
  CHECK(a.best == b.best);
  CHECK(a.pareto == b.pareto);
  int lines = 0;
  for (char c : test::slurp(d + "/s2.jsonl")) lines += c == '\n';
  CHECK(lines == 6);  // rank 0 logs every evaluation once
}

TEST_CASE("distributed search with a user evaluator: the ranks share the children; the result is the "
          "1-process one",
          "[dist]") {
  if (!dist_available()) return;
  std::string d = test::temp_dir("dsearch");
  // Each evaluation appends the rank that ran it (the evaluator inherits RANK).
  test::spit(d + "/eval.sh", "echo \"${RANK:-single}\" >> " + d + "/ranks.log\nsleep 0.05\n"
                             "awk '{n += length($0)} END {printf \"{\\\"accuracy\\\": %.6f}\\n\", 1 - 100 / (100 + n)}'\n");
  for (std::string strategy : {"evolution", "random", "coarse-to-fine"}) {
    DYNAMIC_SECTION(strategy) {
      const std::vector<std::string> base = {"--space",
                                             test::test_data("tiny-space.yaml"),
                                             "--evaluator",
                                             "sh " + d + "/eval.sh",
                                             "--strategy",
                                             strategy,
                                             "--population",
                                             "6",
                                             "--sample-size",
                                             "2",
                                             "--budget",
                                             "16",
                                             "--threads",
                                             "1",
                                             "-q"};
      auto one = test::tool("nas-search", base, {"--out", d + "/one.json"});
      INFO(one.err);
      REQUIRE(one.code == 0);
      test::spit(d + "/ranks.log", "");
      auto two = run_ranks(
          d, 2, test::tool_line("nas-search", base, {"--out", d + "/two.json", "--dist-timeout", "60"}), free_port());
      INFO(two.err << test::slurp(d + "/r1.err"));
      REQUIRE(two.code == 0);
      auto a = families::load_search_result(d + "/one.json"), b = families::load_search_result(d + "/two.json");
      REQUIRE(a.candidates.size() == b.candidates.size());
      for (size_t i = 0; i < a.candidates.size(); ++i) {
        CHECK(a.candidates[i].hash == b.candidates[i].hash);
        CHECK(a.candidates[i].val_acc == b.candidates[i].val_acc);
        CHECK(a.candidates[i].origin == b.candidates[i].origin);
      }
      CHECK(a.best == b.best);
      std::string log = test::slurp(d + "/ranks.log");
      int by0 = 0, by1 = 0;
      for (size_t p = 0; (p = log.find('\n', p)) != std::string::npos; ++p) {
        by0 += log.compare(p - 1, 1, "0") == 0;
        by1 += log.compare(p - 1, 1, "1") == 0;
      }
      CHECK(by0 + by1 == 16);  // each child scored once
      // random: all shared; evolution: its first population (6); coarse-to-fine: its grid (8).
      CHECK(by1 >= (strategy == "random" ? 8 : 3));
    }
  }
}

TEST_CASE("a rank killed or hung makes the other exit 6 within the timeout; SIGTERM of one rank stops both with "
          "a checkpoint",
          "[dist]") {
  if (!dist_available()) return;
  std::string d = test::temp_dir("dkill");
  std::string tr = write_train_spec(d, 40000);  // 625 steps: far longer than the test
  const std::vector<std::string> train = {
      "--space", test::test_data("tiny-space.yaml"), "--train", tr, "--threads", "1", "--dist-timeout", "8"};
  for (std::string how : {"KILL", "STOP", "TERM"}) {
    DYNAMIC_SECTION("SIG" << how) {
      std::string out = d + "/" + how;
      // Both ranks in the background; once rank 0 has logged a few steps, signal rank 1 and time
      // rank 0's exit.
      std::string script = "export MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) +
                           " WORLD_SIZE=2\n"
                           "RANK=1 " +
                           test::tool_line("nas-train-supernet", train) + " --out " + out + " 2> " + d +
                           "/r1.err & p1=$!\n"
                           "RANK=0 " +
                           test::tool_line("nas-train-supernet", train) + " --out " + out + " 2> " + d +
                           "/r0.err & p0=$!\n"
                           "for i in $(seq 600); do [ $(cat " +
                           out +
                           "/metrics.jsonl 2>/dev/null | wc -l) -ge 7 ] && break; sleep 0.1; done\n"
                           "start=$(date +%s.%N)\nkill -" +
                           how +
                           " $p1\nwait $p0; c0=$?\nend=$(date +%s.%N)\n"
                           "kill -CONT $p1 2>/dev/null\n"
                           "for i in $(seq 300); do kill -0 $p1 2>/dev/null || break; sleep 0.1; done\n"
                           "kill -KILL $p1 2>/dev/null; wait $p1; c1=$?\n"
                           "echo $c0 $c1 $(awk \"BEGIN {print $end - $start}\")\n";
      test::spit(d + "/kill.sh", script);
      auto r = test::run_cmd("bash " + d + "/kill.sh");
      std::string err0 = test::slurp(d + "/r0.err");
      INFO(r.out << r.err << err0);
      std::istringstream is(r.out);
      int c0 = -1, c1 = -1;
      double seconds = -1;
      is >> c0 >> c1 >> seconds;
      if (how == "TERM") {
        CHECK(c0 == 5);  // the other rank stopped with it
        CHECK(c1 == 5);
        auto meta = supernet::read_checkpoint_meta(out + "/supernet.ckpt");
        CHECK(meta.step >= 7);
        CHECK_FALSE(meta.finished);
      } else {
        CHECK(c0 == 6);
        CHECK_THAT(err0, Catch::Matchers::Contains("[rank 0]: error: rank 0:"));
        CHECK_THAT(err0, Catch::Matchers::Contains(how == "KILL" ? "a peer rank died" : "a peer rank did not answer within 8 s"));
        CHECK(seconds < (how == "KILL" ? 8.0 : 30.0));  // a dead peer is seen at once, a hung one at the timeout
        if (how == "STOP") CHECK(seconds >= 7.0);
        // Whatever checkpoint there is loads (written atomically by rank 0).
        if (test::exists(out + "/supernet.ckpt")) CHECK(supernet::read_checkpoint_meta(out + "/supernet.ckpt").step % 5 == 0);
      }
    }
  }
}

TEST_CASE("synchronized batch norm over one rank is torch's batch norm: output, gradients, running statistics",
          "[dist]") {
  torch::manual_seed(3);
  for (bool flat : {false, true}) {
    nn::DynamicBatchNorm2d plain(12), synced(12);
    torch::Tensor x = torch::randn(flat ? std::vector<int64_t>{16, 8} : std::vector<int64_t>{6, 8, 5, 7}) * 3 + 1.5;
    for (auto* bn : {&plain, &synced}) {
      torch::NoGradGuard ng;
      (*bn)->weight.uniform_(0.5, 1.5);
      (*bn)->bias.uniform_(-0.5, 0.5);
    }
    synced->weight.data().copy_(plain->weight.data());
    synced->bias.data().copy_(plain->bias.data());
    synced->running_mean.copy_(torch::full({12}, 0.7));  // a shift far from the batch mean
    plain->running_mean.copy_(synced->running_mean);
    torch::Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
    torch::Tensor w = torch::randn(x.sizes());
    (plain->forward(xa) * w).sum().backward();
    int calls = 0;
    nn::set_batchnorm_sync([&](const torch::Tensor& t) {
      ++calls;
      return t * 1.0;  // one rank: the sum over ranks is the tensor itself
    });
    (synced->forward(xb) * w).sum().backward();
    nn::set_batchnorm_sync({});
    CHECK(calls == 2);  // the statistics in forward, the gradient sums in backward
    CHECK(torch::allclose(xa.grad(), xb.grad(), 1e-4, 1e-5));
    CHECK(torch::allclose(plain->weight.grad(), synced->weight.grad(), 1e-4, 1e-4));
    CHECK(torch::allclose(plain->bias.grad(), synced->bias.grad(), 1e-4, 1e-4));
    CHECK(torch::allclose(plain->running_mean, synced->running_mean, 1e-6, 1e-6));
    CHECK(torch::allclose(plain->running_var, synced->running_var, 1e-6, 1e-6));
    torch::NoGradGuard ng;
    CHECK(torch::allclose(plain->forward(x), synced->forward(x), 1e-5, 1e-5));
  }
  // bf16 activations (autocast): statistics still in fp32, output back in bf16.
  nn::DynamicBatchNorm2d a(8), b(8);
  torch::Tensor x = (torch::randn({64, 8, 6, 6}) * 40 + 300).to(torch::kBFloat16);
  {
    torch::NoGradGuard ng;
    a->forward(x.to(torch::kFloat));
  }
  nn::set_batchnorm_sync([](const torch::Tensor& t) { return t * 1.0; });
  torch::Tensor y;
  {
    torch::NoGradGuard ng;
    y = b->forward(x);
  }
  nn::set_batchnorm_sync({});
  CHECK(y.scalar_type() == torch::kBFloat16);
  CHECK(torch::allclose(a->running_mean, b->running_mean, 1e-5, 1e-4));
  CHECK(torch::allclose(a->running_var, b->running_var, 1e-4, 1e-3));  // E[d^2] - E[d]^2 with d ~ 300 in bf16 would not be
}

TEST_CASE("torchrun launches the tools (its agent hosts the store)", "[dist]") {
  if (!dist_available()) return;
  if (test::run_cmd("command -v torchrun && /usr/bin/python3 -c 'import torch.distributed.run'").code != 0) {
    WARN("torchrun (Debian's python3-torch) is not installed: skipped");
    return;
  }
  std::string d = test::temp_dir("torchrun");
  std::string tr = write_train_spec(d);
  // --redirects 2 --tee 2: Debian's torchrun under Python 3.12 fails on its default of 0 (README).
  auto r = test::run_cmd("torchrun --nnodes=1 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=127.0.0.1:" +
                         std::to_string(free_port()) + " --redirects 2 --tee 2 --no_python " +
                         test::tool_line("nas-train-supernet", {"--space", test::test_data("tiny-space.yaml"),
                                                                "--train", tr, "--threads", "1", "--dist-timeout", "60",
                                                                "--stop-after-steps", "3", "--out", d + "/run"}));
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto summary = spec::json::parse(r.out.substr(r.out.find('{')));
  CHECK(summary["world_size"] == 2);
  CHECK(summary["steps"] == 3);
  CHECK(supernet::read_checkpoint_meta(d + "/run/supernet.ckpt").step == 3);
}
