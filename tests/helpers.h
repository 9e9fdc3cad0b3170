#pragma once
// Shared test helpers: temporary directories, running the real binaries, small specs.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nas::data {
struct ImageSet;
}

namespace nas::test {

// Fashion-MNIST as installed by scripts/setup.sh (dataset-fashion-mnist).
inline const char* kFmnist = "/usr/share/datasets/fashion-mnist";

// Under AddressSanitizer (NAS_SANITIZE=ON) the tools run several times slower and its allocator
// keeps freed memory in a quarantine: the tests' time limits and memory margins scale by this.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
inline constexpr int kSlowdown = 4;
#else
inline constexpr bool kSanitized = false;
inline constexpr int kSlowdown = 1;
#endif
// A time limit for a command line (timeout(1), sleep(1)): `seconds` times kSlowdown.
std::string seconds(double seconds);

// A fresh empty directory under /tmp, removed at process exit.
std::string temp_dir(const std::string& tag);

struct RunResult {
  int code = -1;
  std::string out, err;
};
// Runs a shell command line, capturing stdout and stderr.
RunResult run_cmd(const std::string& cmdline);
// Path of a built tool binary.
std::string bin(const std::string& tool);
// A built tool's command line: bin(tool) and each argument shell-quoted, so that every argument
// reaches the tool as it is (for wrappers: timeout, environment variables, redirections).
std::string tool_line(const std::string& tool, const std::vector<std::string>& args,
                      const std::vector<std::string>& more = {});
// Runs a built tool with these arguments (then `more`), capturing stdout and stderr.
RunResult tool(const std::string& tool, const std::vector<std::string>& args,
               const std::vector<std::string>& more = {});
// Path of a file under the source tree / tests/data.
std::string src(const std::string& rel);
std::string test_data(const std::string& rel);

std::string slurp(const std::string& path);
// s with every occurrence of `from` replaced by `to`.
std::string replace_all(std::string s, const std::string& from, const std::string& to);
void spit(const std::string& path, const std::string& text);
bool exists(const std::string& path);
// Names of files in dir (no . or ..).
int count_files(const std::string& dir);
// ONNX Runtime for Node.js as scripts/setup.sh installs it: its node_modules directory (this
// build's, else build/ of the checkout), or "" when node or onnxruntime-node is missing.
std::string ort_node_modules();
// Runs `model` in ONNX Runtime (tests/data/ort_run.js) on float32 `input` bytes of shape `dims`,
// using files in `dir`; on success (code 0) `output` holds the output's float32 bytes.
RunResult ort_run(const std::string& modules, const std::string& model, const std::string& input,
                  const std::string& dims, const std::string& dir, std::string& output);
// The message of the nas::Error that f throws, or "no error".
std::string error_of(const std::function<void()>& f);
// Whether LibTorch sees a CUDA device (defined in test_main.cpp, which includes LibTorch).
bool cuda_available();
// The top-1 accuracy of a child checkpoint on the first n images of `set`, counted here: each
// prediction against the set's own label. nas-benchmark --threads 1 scores the same images in the
// same batches on one thread (CPU), so it computes the same logits and must report this accuracy,
// whichever BLAS kernel the machine picks (test_main.cpp).
double child_top1(const std::string& ckpt, const data::ImageSet& set, int64_t n);

}  // namespace nas::test
