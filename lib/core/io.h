#pragma once
// File helpers: whole-file reads with clear errors, and atomic writes (temp file + rename) so that a
// crash or an error never leaves a partial output behind.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace nas {

// Reads a whole file; IoError naming the path and the reason when it cannot.
std::string read_file(const std::string& path);

// IoError naming the path and the reason unless it is a readable regular file.
void check_readable_file(const std::string& path);

// True when the path exists and is a regular file.
bool is_regular_file(const std::string& path);

// Writes `content` to `path` atomically: a temporary file in the same directory, fsync, rename.
void write_file_atomic(const std::string& path, const std::string& content);

// Calls writer(tmp_path) and renames tmp_path over `path` when it returns; removes tmp_path when it
// throws. For writers that insist on a path of their own (torch archives).
void write_via_temp(const std::string& path, const std::function<void(const std::string& tmp)>& writer);

// Fails early (IoError) when the directory that would hold `path` does not exist or is not writable.
void check_output_path(const std::string& path);

// Creates a directory and its parents if needed (IoError otherwise).
void make_dirs(const std::string& dir);

// A read-only memory map of a file. Its pages live in the page cache: read on first touch, shared
// with other processes mapping the same file, and evicted under memory pressure (read again when
// touched), so data larger than RAM can be used without holding it. A file truncated while mapped
// makes the next touch of a lost page fault (SIGBUS; the process then prints a one-line error and
// exits 4): datasets must not be rewritten in place while a tool reads them (replace them by
// renaming a new file over the old one).
class MappedFile {
 public:
  // The whole file; IoError naming it when it cannot be opened or mapped, or is empty.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  friend class SpillFile;
  MappedFile(const uint8_t* data, size_t size);  // installs the SIGBUS handler (exit 4, one line)
  const uint8_t* data_;
  size_t size_;
};

// Bytes written to an unlinked temporary file under $TMPDIR (else /var/tmp, on disk where /tmp may
// be a RAM-backed tmpfs), then mapped: for data that are produced once (a decompressed dataset) and
// must not stay in memory. The file has no name, so nothing is left behind however the process
// ends. IoError naming `what` and the directory when it cannot be created or written (full disk);
// a log line when the directory is a tmpfs (the copy would stay in memory after all).
class SpillFile {
 public:
  explicit SpillFile(const std::string& what);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  void append(const uint8_t* bytes, size_t n);
  size_t size() const { return size_; }
  // Ends writing and maps what was written (at least one byte).
  std::shared_ptr<const MappedFile> map();
  // Where spill files go: $TMPDIR when set, else /var/tmp.
  static std::string directory();

 private:
  std::string what_, dir_;
  int fd_ = -1;
  size_t size_ = 0;
};

}  // namespace nas
