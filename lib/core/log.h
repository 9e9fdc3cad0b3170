#pragma once
// Logging to stderr, progress lines, the interrupt flag, and a JSON-lines metrics writer.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace nas {

// The tool name printed in front of log lines ("nas-search: ...").
void set_log_prefix(const std::string& prefix);
const std::string& log_prefix();
// Verbosity: 0 quiet (errors only), 1 normal, 2 verbose.
void set_log_level(int level);
int log_level();
void log_info(const std::string& msg);
void log_warn(const std::string& msg);
void log_debug(const std::string& msg);

// SIGINT/SIGTERM set a flag that long loops poll; they stop cleanly and the tool exits 5.
void install_signal_handlers();
bool interrupt_requested();
void request_interrupt();  // for tests
void clear_interrupt();

// Progress for long work: an updating line with rate and ETA on a terminal, plain periodic lines
// (every `period_s` seconds) when stderr is not a terminal.
class Progress {
 public:
  // `start`: units already done before this process (a resumed run), left out of the rate.
  Progress(std::string what, int64_t total, std::string unit = "it", double period_s = 10.0, int64_t start = 0);
  // Reports `done` units finished; `extra` is appended (e.g. "loss 0.53").
  void update(int64_t done, const std::string& extra = "");
  // The final line, with the units actually done.
  void finish(int64_t done, const std::string& extra = "");

 private:
  void print(int64_t done, const std::string& extra, bool final);
  std::string what_, unit_;
  int64_t total_, start_units_;
  double period_s_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

// Appends one JSON object per line to a file (flushed each line) so that a crash loses nothing.
class JsonlWriter {
 public:
  JsonlWriter() = default;
  JsonlWriter(const std::string& path, bool append);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write_line(const std::string& json_line);
  bool is_open() const { return f_ != nullptr; }

 private:
  FILE* f_ = nullptr;
  std::string path_;
};

// Seconds since an arbitrary epoch (steady clock).
double now_seconds();

}  // namespace nas
