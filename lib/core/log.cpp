#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>

#include "core/error.h"

namespace nas {
namespace {
std::string g_prefix = "nas";
int g_level = 1;
std::atomic<bool> g_interrupt{false};

void on_signal(int) { g_interrupt.store(true); }

std::string fmt_duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  return buf;
}
}  // namespace

void set_log_prefix(const std::string& p) { g_prefix = p; }
const std::string& log_prefix() { return g_prefix; }
void set_log_level(int level) { g_level = level; }
int log_level() { return g_level; }
void log_info(const std::string& msg) {
  if (g_level >= 1) std::cerr << g_prefix << ": " << msg << "\n";
}
void log_warn(const std::string& msg) { std::cerr << g_prefix << ": warning: " << msg << "\n"; }
void log_debug(const std::string& msg) {
  if (g_level >= 2) std::cerr << g_prefix << ": " << msg << "\n";
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}
bool interrupt_requested() { return g_interrupt.load(); }
void request_interrupt() { g_interrupt.store(true); }
void clear_interrupt() { g_interrupt.store(false); }

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Progress::Progress(std::string what, int64_t total, std::string unit, double period_s, int64_t start)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), start_units_(start), period_s_(period_s),
      tty_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_(start_) {}

void Progress::update(int64_t done, const std::string& extra) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.25 : period_s_)) return;
  last_ = now;
  print(done, extra, false);
}

void Progress::finish(int64_t done, const std::string& extra) { print(done, extra, true); }

void Progress::print(int64_t done, const std::string& extra, bool final) {
  if (g_level < 1) return;
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = el > 0 ? static_cast<double>(done - start_units_) / el : 0.0;
  double eta = rate > 0 ? (total_ - done) / rate : -1;
  char buf[256];
  double pct = total_ > 0 ? 100.0 * done / total_ : 100.0;
  std::snprintf(buf, sizeof buf, "%s %lld/%lld (%.0f%%) %.1f %s/s elapsed %s ETA %s", what_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), pct, rate, unit_.c_str(),
                fmt_duration(el).c_str(), final ? "0m00s" : fmt_duration(eta).c_str());
  std::string line = g_prefix + ": " + buf + (extra.empty() ? "" : "  " + extra);
  if (tty_) {
    std::cerr << "\r\033[K" << line << (final ? "\n" : "") << std::flush;
  } else {
    std::cerr << line << "\n";
  }
}

JsonlWriter::JsonlWriter(const std::string& path, bool append) : path_(path) {
  f_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  NAS_CHECK(f_ != nullptr, IoError, path << ": cannot write: " << std::strerror(errno));
}
JsonlWriter::~JsonlWriter() {
  if (f_) std::fclose(f_);
}
void JsonlWriter::write_line(const std::string& line) {
  if (!f_) return;
  bool ok = std::fputs(line.c_str(), f_) >= 0 && std::fputc('\n', f_) != EOF && std::fflush(f_) == 0;
  NAS_CHECK(ok, IoError, path_ << ": write failed: " << std::strerror(errno));
}

}  // namespace nas
