#pragma once
// Typed errors. The library throws, never exits; each tool maps the type to an exit code once.
#include <sstream>
#include <stdexcept>
#include <string>

namespace nas {

// Exit codes shared by every tool (documented in README.md and each tool's --help).
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntime = 1,
  kExitUsage = 2,
  kExitSpec = 3,
  kExitIo = 4,
  kExitInterrupted = 5,
  kExitDistributed = 6,  // a peer rank died or hung, or the rendezvous timed out
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg, int code = kExitRuntime) : std::runtime_error(msg), code_(code) {}
  int exit_code() const { return code_; }

 private:
  int code_;
};

// Invalid or unsupported spec (YAML/JSON document, arch outside its space, data that do not fit).
class SpecError : public Error {
 public:
  explicit SpecError(const std::string& msg) : Error(msg, kExitSpec) {}
};
// A file that cannot be read or written.
class IoError : public Error {
 public:
  explicit IoError(const std::string& msg) : Error(msg, kExitIo) {}
};
// A checkpoint that is missing, truncated, of the wrong kind or of a newer format.
class CheckpointError : public Error {
 public:
  explicit CheckpointError(const std::string& msg) : Error(msg, kExitIo) {}
};
// Bad command-line usage found after parsing (conflicting flags, ...).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& msg) : Error(msg, kExitUsage) {}
};
// SIGINT/SIGTERM seen; what could be saved was saved.
class Interrupted : public Error {
 public:
  explicit Interrupted(const std::string& msg) : Error(msg, kExitInterrupted) {}
};

}  // namespace nas

// NAS_CHECK(cond, ErrorType, streamed message): throws ErrorType(message) when cond is false.
#define NAS_CHECK(cond, ErrorType, msg)      \
  do {                                       \
    if (!(cond)) {                           \
      std::ostringstream nas_check_oss_;     \
      nas_check_oss_ << msg;                 \
      throw ErrorType(nas_check_oss_.str()); \
    }                                        \
  } while (0)
