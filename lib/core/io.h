#pragma once
// File helpers: whole-file reads with clear errors, and atomic writes (temp file + rename) so that a
// crash or an error never leaves a partial output behind.
#include <functional>
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

}  // namespace nas
