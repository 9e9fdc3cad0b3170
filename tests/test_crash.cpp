// Crash safety: runs killed at random moments resume to the uninterrupted run, and a killed
// writer's temporary files are cleaned up.
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <cctype>
#include <string>
#include <vector>

#include "catch.h"
#include "core/io.h"
#include "core/rng.h"
#include "helpers.h"
#include "supernet/checkpoint.h"

using namespace nas;

TEST_CASE("crash safety: a run killed (SIGKILL) at 10 random moments resumes to the uninterrupted run's weights",
          "[crash]") {
  std::string d = test::temp_dir("crash");
  const std::string train_text = test::slurp(test::test_data("tiny-train.yaml"));
  // A checkpoint every step, so that kills also land while one is being written; a metrics line
  // every step, to aim the kills.
  test::spit(d + "/train.yaml", test::replace_all(test::replace_all(train_text, "checkpoint_every_steps: 10", "checkpoint_every_steps: 1"),
                                            "log_every_steps: 5", "log_every_steps: 1"));
  const std::vector<std::string> run = {"--space",
                                        test::test_data("tiny-mlp.yaml"),
                                        "--train",
                                        d + "/train.yaml",
                                        "--train-limit",
                                        "3200",
                                        "--threads",
                                        "1",
                                        "-q"};
  auto ref = test::tool("nas-train-supernet", run, {"--out", d + "/ref"});
  REQUIRE(ref.code == 0);
  auto reference = supernet::load_supernet(d + "/ref/supernet.ckpt");
  const auto ref_params = reference.net->named_parameters();
  const auto ref_buffers = reference.net->named_buffers();
  Rng rng(2026);
  int kills = 0;
  for (int attempt = 0; kills < 10; ++attempt) {
    REQUIRE(attempt < 30);
    const std::string out = d + "/run" + std::to_string(attempt);
    // A random moment: once the run has logged `step` of its 50 steps, plus up to 20 ms.
    const int step = 1 + static_cast<int>(rng.below(40));
    const double extra = 0.02 * rng.uniform();
    INFO("kill " << attempt << " after step " << step << " + " << extra << " s");
    test::spit(d + "/kill.sh", test::tool_line("nas-train-supernet", run) + " --out " + out +
                                   " & p=$!\n"
                                   "for i in $(seq 2000); do [ $(cat " +
                                   out + "/metrics.jsonl 2>/dev/null | wc -l) -ge " + std::to_string(step) +
                                   " ] && break; sleep 0.005; done\nsleep " + std::to_string(extra) +
                                   "\nkill -KILL $p\nwait $p\necho $?\n");
    auto killed = test::run_cmd("bash " + d + "/kill.sh");
    if (killed.out == "0\n") continue;  // it finished first: not a kill
    CHECK(killed.out == "137\n");
    ++kills;
    // The newest checkpoint loads (never a half-written one), then --resume finishes the run.
    REQUIRE(test::exists(out + "/supernet.ckpt"));
    auto meta = supernet::read_checkpoint_meta(out + "/supernet.ckpt");
    CHECK(meta.step >= step - 1);
    CHECK_FALSE(meta.finished);
    CHECK_NOTHROW(supernet::load_supernet(out + "/supernet.ckpt"));
    auto r = test::tool("nas-train-supernet", {"--out", out, "--resume", "--threads", "1", "-q"});
    INFO(r.err);
    REQUIRE(r.code == 0);
    auto got = supernet::load_supernet(out + "/supernet.ckpt");
    CHECK(got.meta.finished);
    auto gp = got.net->named_parameters(), gb = got.net->named_buffers();
    for (const auto& it : ref_params) CHECK(torch::equal(it.value(), gp[it.key()]));
    for (const auto& it : ref_buffers) CHECK(torch::equal(it.value(), gb[it.key()]));
    CHECK(test::run_cmd("find " + out + " -name '*.tmp*'").out.empty());
  }
}

TEST_CASE("a killed writer's temporary file is removed by the next write, unless another host wrote it", "[crash]") {
  std::string d = test::temp_dir("stale");
  // A PID that ran and is gone.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  REQUIRE(dead > 0);
  int status = 0;
  ::waitpid(dead, &status, 0);
  char host[256] = {0};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  std::string me = host;
  me = me.substr(0, me.find('.'));
  for (auto& ch : me)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') ch = '-';
  const std::string out = d + "/out.json", pid = std::to_string(dead);
  const std::string mine = out + ".tmp." + me + "." + pid, old_style = out + ".tmp." + pid,
                    other_host = out + ".tmp.some-other-host." + pid, live = out + ".tmp." + me + "." + std::to_string(::getppid());
  for (const auto& f : {mine, old_style, other_host, live}) test::spit(f, "half");
  write_file_atomic(out, "{}");
  CHECK(test::slurp(out) == "{}");
  CHECK_FALSE(test::exists(mine));
  CHECK_FALSE(test::exists(old_style));
  CHECK(test::exists(other_host));  // its writer may be alive on the other machine
  CHECK(test::exists(live));        // a live process of this host
}
