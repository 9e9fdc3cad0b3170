#include "core/io.h"

#include <algorithm>
#include <vector>

#include <signal.h>

#include <dirent.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"

namespace nas {
namespace {

std::string dir_of(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

// This host's name as it goes into temporary file names: letters, digits and '-' only, so that the
// name parses back (a '.' would split it).
const std::string& host_tag() {
  static const std::string tag = [] {
    char buf[256] = {0};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return std::string("localhost");
    std::string t;
    for (const char* p = buf; *p && *p != '.'; ++p)
      t += (std::isalnum(static_cast<unsigned char>(*p)) || *p == '-') ? *p : '-';
    return t.empty() ? std::string("localhost") : t;
  }();
  return tag;
}

// <path>.tmp.<host>.<pid>: the host too, because on a shared file system another machine's live
// writer of the same path has a PID that means nothing here.
std::string temp_name(const std::string& path) {
  return path + ".tmp." + host_tag() + "." + std::to_string(::getpid());
}

// Temporary files of `path` left by a process of this host that no longer runs (killed with
// SIGKILL while writing): removed, so that a crash leaves nothing behind once the next run writes
// the file. Another host's are left alone (its writer may be alive); names without a host (builds
// before 2026-12) count as this host's.
void remove_stale_temps(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
  DIR* dp = ::opendir(dir.c_str());
  if (!dp) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(dp)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    std::string pid_text = name.substr(prefix.size());
    const size_t dot = pid_text.rfind('.');
    if (dot != std::string::npos) {
      if (pid_text.compare(0, dot, host_tag()) != 0 || dot != host_tag().size()) continue;
      pid_text = pid_text.substr(dot + 1);
    }
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9)
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(dir + "/" + name);
  }
  ::closedir(dp);
  for (const auto& f : stale) std::remove(f.c_str());
}

}  // namespace

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void check_readable_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw IoError(path + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw IoError(path + ": expected a file, found a directory");
  if (::access(path.c_str(), R_OK) != 0) throw IoError(path + ": cannot open: " + std::strerror(errno));
}

std::string read_file(const std::string& path) {
  check_readable_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(path + ": read error");
  return ss.str();
}

void check_output_path(const std::string& path) {
  NAS_CHECK(!path.empty(), IoError, "output path is empty");
  std::string dir = dir_of(path);
  struct stat st {};
  NAS_CHECK(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), IoError,
            path << ": output directory " << dir << " does not exist");
  NAS_CHECK(::access(dir.c_str(), W_OK) == 0, IoError,
            path << ": output directory " << dir << " is not writable");
  if (::stat(path.c_str(), &st) == 0) {
    NAS_CHECK(!S_ISDIR(st.st_mode), IoError, path << ": expected a file path, found a directory");
  }
}

void write_via_temp(const std::string& path, const std::function<void(const std::string&)>& writer) {
  check_output_path(path);
  const std::string tmp = temp_name(path);
  remove_stale_temps(path);
  try {
    writer(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  // Flush the data to disk before the rename makes it visible.
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw IoError(path + ": cannot write: " + std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_via_temp(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    NAS_CHECK(f != nullptr, IoError, path << ": cannot write: " << std::strerror(errno));
    size_t n = std::fwrite(content.data(), 1, content.size(), f);
    int flush_rc = std::fflush(f);
    int close_rc = std::fclose(f);
    NAS_CHECK(n == content.size() && flush_rc == 0 && close_rc == 0, IoError,
              path << ": write failed: " << std::strerror(errno));
  });
}

void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  std::string cur;
  std::stringstream ss(dir);
  std::string part;
  if (dir[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part;
    struct stat st {};
    if (::stat(cur.c_str(), &st) != 0) {
      NAS_CHECK(::mkdir(cur.c_str(), 0777) == 0 || errno == EEXIST, IoError,
                dir << ": cannot create directory: " << std::strerror(errno));
    } else {
      NAS_CHECK(S_ISDIR(st.st_mode), IoError, dir << ": " << cur << " exists and is not a directory");
    }
    cur += "/";
  }
}

namespace {
// A mapped file that shrinks (rewritten in place, a network file system failing) makes the next
// touch of a lost page raise SIGBUS: a one-line error and exit 4 instead of a crash. The message
// is built whenever a file is mapped, with the log prefix of the time (a signal handler may only
// write and exit).
char g_sigbus_message[512];
size_t g_sigbus_length = 0;
void on_sigbus(int) {
  if (::write(STDERR_FILENO, g_sigbus_message, g_sigbus_length) < 0) {
  }
  ::_exit(4);
}
void install_sigbus_handler() {
  const std::string m = log_prefix() +
                        ": error: a mapped data file was truncated or became unreadable while in use (SIGBUS): "
                        "expected datasets to stay unchanged while a tool reads them (replace them by renaming)\n";
  g_sigbus_length = std::min(m.size(), sizeof g_sigbus_message);
  std::memcpy(g_sigbus_message, m.data(), g_sigbus_length);
  static bool installed = false;
  if (installed) return;
  installed = true;
  struct sigaction sa {};
  sa.sa_handler = on_sigbus;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, nullptr);
}
}  // namespace

MappedFile::MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) { install_sigbus_handler(); }

MappedFile::~MappedFile() {
  if (data_ && size_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  check_readable_file(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  NAS_CHECK(fd >= 0, IoError, path << ": cannot open: " << std::strerror(errno));
  struct stat st {};
  const bool sized = ::fstat(fd, &st) == 0 && st.st_size > 0;
  void* p = sized ? ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  const int err = errno;
  ::close(fd);  // the mapping keeps the file
  NAS_CHECK(sized, IoError, path << ": empty file");
  NAS_CHECK(p != MAP_FAILED, IoError, path << ": cannot map: " << std::strerror(err));
  return std::shared_ptr<const MappedFile>(
      new MappedFile(static_cast<const uint8_t*>(p), static_cast<size_t>(st.st_size)));
}

std::string SpillFile::directory() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/var/tmp";
}

SpillFile::SpillFile(const std::string& what) : what_(what), dir_(directory()) {
#ifdef O_TMPFILE
  fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
  if (fd_ < 0) {  // no O_TMPFILE here (or on this file system): create, then unlink at once
    std::string name = dir_ + "/nas-spill-XXXXXX";
    fd_ = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(name.c_str());
  }
  NAS_CHECK(fd_ >= 0, IoError,
            what_ << ": cannot create a temporary file in " << dir_ << " (set TMPDIR to a writable directory): "
                  << std::strerror(errno));
  struct statfs fs {};
  if (::fstatfs(fd_, &fs) == 0 && fs.f_type == TMPFS_MAGIC)
    log_info(what_ + ": its temporary copy goes to " + dir_ +
             ", a tmpfs (memory): set TMPDIR to a directory on disk to keep it out of memory");
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

void SpillFile::append(const uint8_t* bytes, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, bytes, n);
    if (w < 0 && errno == EINTR) continue;
    NAS_CHECK(w > 0, IoError,
              what_ << ": cannot write its temporary copy in " << dir_ << " (set TMPDIR to a directory with more "
                    << "room): " << std::strerror(w < 0 ? errno : ENOSPC));
    bytes += w;
    n -= static_cast<size_t>(w);
    size_ += static_cast<size_t>(w);
  }
}

std::shared_ptr<const MappedFile> SpillFile::map() {
  NAS_CHECK(size_ > 0, IoError, what_ << ": nothing to map");
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
  NAS_CHECK(p != MAP_FAILED, IoError, what_ << ": cannot map its temporary copy: " << std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  return std::shared_ptr<const MappedFile>(new MappedFile(static_cast<const uint8_t*>(p), size_));
}

}  // namespace nas
