#include "search/external.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace nas::search {
namespace {
std::string last_line(const std::string& s) {
  size_t end = s.find_last_not_of(" \n\r\t");
  if (end == std::string::npos) return "";
  size_t begin = s.find_last_of('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  std::string l = s.substr(begin, end - begin + 1);
  return l.size() > 200 ? l.substr(0, 200) + "..." : l;
}

ExternalResult failed(std::string why) {
  ExternalResult r;
  r.error = std::move(why);
  return r;
}

// A number field of the evaluator's output, by either name; NaN when absent.
double field(const spec::json& j, const char* a, const char* b) {
  for (const char* k : {a, b})
    if (j.contains(k) && j[k].is_number()) return j[k].get<double>();
  return std::nan("");
}
}  // namespace

namespace {
// A command started by /bin/sh in a process group of its own, with pipes to its stdin, stdout and stderr.
struct Child {
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;  // our ends; -1 once closed
  std::string error;                // why it could not be started
};

Child spawn(const std::string& command) {
  Child c;
  int in[2], out[2], err[2];
  if (pipe(in) != 0 || pipe(out) != 0 || pipe(err) != 0) {
    c.error = std::string("pipe: ") + std::strerror(errno);
    return c;
  }
  c.pid = fork();
  if (c.pid < 0) {
    c.error = std::string("fork: ") + std::strerror(errno);
    return c;
  }
  if (c.pid == 0) {
    setpgid(0, 0);  // its own group: a timeout kills the command and everything it started
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(c.pid, c.pid);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  signal(SIGPIPE, SIG_IGN);  // a command that does not read its stdin must not kill us
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  c.in = in[1];
  c.out = out[0];
  c.err = err[0];
  return c;
}

struct Exchange {
  std::string stdout_text, stderr_text;
  bool timed_out = false;
};

// Writes `input` to the child's stdin and reads its outputs until it closes them, the deadline
// passes or an interrupt is requested (stdout kept up to 64 MiB).
Exchange exchange(Child& c, const std::string& input, double deadline) {
  Exchange x;
  size_t written = 0;
  if (input.empty()) {
    close(c.in);
    c.in = -1;
  }
  int open_outputs = 2;
  while (open_outputs > 0 || c.in >= 0) {
    double left = deadline - now_seconds();
    if (left <= 0) {
      x.timed_out = true;
      break;
    }
    pollfd fds[3];
    int n = 0;
    if (c.out >= 0) fds[n++] = {c.out, POLLIN, 0};
    if (c.err >= 0) fds[n++] = {c.err, POLLIN, 0};
    if (c.in >= 0) fds[n++] = {c.in, POLLOUT, 0};
    int rc = poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min(left, 0.2) * 1000) + 1);
    if (rc < 0 && errno != EINTR) break;
    if (interrupt_requested()) break;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      int fd = fds[i].fd;
      if (fd == c.in) {
        ssize_t w = write(c.in, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) written = input.size();  // it closed its stdin: fine
        if (written >= input.size()) {
          close(c.in);
          c.in = -1;
        }
        continue;
      }
      char buf[4096];
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        (fd == c.out ? x.stdout_text : x.stderr_text).append(buf, static_cast<size_t>(r));
        if (x.stdout_text.size() > (64u << 20)) x.stdout_text.resize(64u << 20);
      } else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        close(fd);
        (fd == c.out ? c.out : c.err) = -1;
        --open_outputs;
      }
    }
  }
  return x;
}

// Closes our ends and waits for the child: killed at once when it timed out or an interrupt was
// requested; otherwise given until the deadline (its outputs are closed, but it may still run).
// Returns its wait status.
int reap(Child& c, double deadline, bool& timed_out, bool interrupted) {
  if (timed_out || interrupted) kill(-c.pid, SIGKILL);
  for (int fd : {c.in, c.out, c.err})
    if (fd >= 0) close(fd);
  int status = 0;
  while (true) {
    pid_t w = waitpid(c.pid, &status, timed_out || interrupted ? 0 : WNOHANG);
    if (w == c.pid || (w < 0 && errno != EINTR)) break;
    if (w == 0 && now_seconds() > deadline) {
      timed_out = true;
      kill(-c.pid, SIGKILL);
    } else if (w == 0) {
      usleep(5000);
    }
  }
  return status;
}

// The evaluator's JSON on stdout: "accuracy" (or "val_acc") in [0, 1], optionally "loss" and costs.
ExternalResult parse_scores(const std::string& stdout_text) {
  spec::json j;
  try {
    j = spec::json::parse(stdout_text);
  } catch (const spec::json::exception&) {
    std::string l = last_line(stdout_text);
    return failed("stdout: expected a JSON object with \"accuracy\", found " + (l.empty() ? "nothing" : "\"" + l + "\""));
  }
  double acc = j.is_object() ? field(j, "accuracy", "val_acc") : std::nan("");
  if (!(acc >= 0 && acc <= 1))
    return failed("stdout: expected \"accuracy\": a number in [0, 1], found " + last_line(stdout_text));
  ExternalResult r;
  r.ok = true;
  r.accuracy = acc;
  double loss = field(j, "loss", "val_loss");
  r.loss = std::isnan(loss) ? 0.0 : loss;
  // Costs: when printed, a non-negative finite number each.
  for (auto [key, dst] : {std::pair<const char*, double*>{"mflops", &r.mflops}, {"memory_mib", &r.memory_mib},
                          {"latency_ms", &r.latency_ms}}) {
    if (!j.contains(key)) continue;
    double v = field(j, key, key);
    if (!(v >= 0 && v < 1e300)) return failed(std::string("stdout: expected \"") + key + "\": a number >= 0, found " + j[key].dump());
    *dst = v;
  }
  if (j.contains("params")) {
    double v = field(j, "params", "params");
    if (!(v >= 0 && v < 9e18)) return failed("stdout: expected \"params\": a number >= 0, found " + j["params"].dump());
    r.params = static_cast<int64_t>(v);
  }
  r.metrics = j;
  return r;
}
}  // namespace

ExternalResult run_external(const std::string& command, const std::string& input, double timeout_s) {
  Child child = spawn(command);
  if (!child.error.empty()) return failed(child.error);
  const double deadline = now_seconds() + timeout_s;
  Exchange x = exchange(child, input, deadline);
  const bool interrupted = interrupt_requested();
  const int status = reap(child, deadline, x.timed_out, interrupted);
  if (interrupted) throw Interrupted("interrupted while the external evaluator ran");
  if (x.timed_out) {
    char why[64];
    std::snprintf(why, sizeof why, "timed out after %g s (killed)", timeout_s);
    return failed(why);
  }
  if (WIFSIGNALED(status)) return failed("killed by signal " + std::to_string(WTERMSIG(status)));
  if (WEXITSTATUS(status) != 0) {
    std::string why = "exited with status " + std::to_string(WEXITSTATUS(status));
    std::string l = last_line(x.stderr_text);
    return failed(l.empty() ? why : why + ": " + l);
  }
  return parse_scores(x.stdout_text);
}

Score ExternalEstimator::score(const spec::Arch& arch) { return score_generic(spec::to_json(arch)); }

Score ExternalEstimator::score_generic(const spec::json& child) {
  ExternalResult r = run_external(command_, spec::canonical_dump(child) + "\n", timeout_);
  Score s;
  if (!r.ok) {
    s.error = r.error;
    log_warn("external evaluator: " + spec::json_hash(child) + ": " + r.error);
    return s;
  }
  s.acc = r.accuracy;
  s.loss = r.loss;
  s.mflops = r.mflops;
  s.params = r.params;
  s.memory_mib = r.memory_mib;
  s.latency_ms = r.latency_ms;
  return s;
}

}  // namespace nas::search
