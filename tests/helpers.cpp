#include "helpers.h"

#include "core/error.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace nas::test {
namespace {
struct Cleanup {
  std::vector<std::string> dirs;
  ~Cleanup() {
    for (const auto& d : dirs) {
      std::string cmd = "rm -rf '" + d + "'";
      if (std::system(cmd.c_str()) != 0) {
      }
    }
  }
};
Cleanup g_cleanup;
}  // namespace

std::string temp_dir(const std::string& tag) {
  std::string tmpl = "/tmp/nas-test-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = mkdtemp(buf.data());
  if (!d) throw std::runtime_error("mkdtemp failed");
  g_cleanup.dirs.push_back(d);
  return d;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

int count_files(const std::string& dir) {
  int n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") ++n;
    }
    closedir(d);
  }
  return n;
}

RunResult run_cmd(const std::string& cmdline) {
  std::string dir = temp_dir("run");
  std::string full = cmdline + " > " + dir + "/out 2> " + dir + "/err < /dev/null";
  int st = std::system(full.c_str());
  RunResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  return r;
}

std::string ort_node_modules() {
  std::string modules = std::string(NAS_BIN_DIR) + "/ort/node_modules";
  if (!exists(modules)) modules = src("build/ort/node_modules");
  if (run_cmd("command -v node").code != 0 || !exists(modules + "/onnxruntime-node")) return "";
  return modules;
}

RunResult ort_run(const std::string& modules, const std::string& model, const std::string& input,
                  const std::string& dims, const std::string& dir, std::string& output) {
  spit(dir + "/in.bin", input);
  auto r = run_cmd("NODE_PATH=" + modules + " node " + test_data("ort_run.js") + " " + model + " " + dir + "/in.bin " +
                   dims + " " + dir + "/out.bin");
  if (r.code == 0) output = slurp(dir + "/out.bin");
  return r;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::string seconds(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", seconds * kSlowdown);
  return buf;
}
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = 0; (i = s.find(from, i)) != std::string::npos; i += to.size()) s.replace(i, from.size(), to);
  return s;
}

std::string bin(const std::string& tool) { return std::string(NAS_BIN_DIR) + "/" + tool; }

namespace {
// `arg` for /bin/sh: as it is when it holds no character the shell treats specially, else in single quotes.
std::string shell_quoted(const std::string& arg) {
  const bool plain = !arg.empty() && arg.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_./:=,+-@%") == std::string::npos;
  if (plain) return arg;
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::string tool_line(const std::string& tool, const std::vector<std::string>& args,
                      const std::vector<std::string>& more) {
  std::string line = bin(tool);
  for (const auto* list : {&args, &more})
    for (const auto& a : *list) line += " " + shell_quoted(a);
  return line;
}

RunResult tool(const std::string& tool, const std::vector<std::string>& args, const std::vector<std::string>& more) {
  return run_cmd(tool_line(tool, args, more));
}
std::string src(const std::string& rel) { return std::string(NAS_SOURCE_DIR) + "/" + rel; }
std::string test_data(const std::string& rel) { return std::string(NAS_TEST_DATA) + "/" + rel; }

}  // namespace nas::test
