// libFuzzer target: the data file readers on arbitrary bytes: IDX (raw or gzip), a CIFAR binary
// batch, and CSV with options taken from the first byte. The bytes are served from a memfd, so the
// readers take the same path as with files on disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/csv.h"
#include "data/datasets.h"
#include "data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  int fd = memfd_create("fuzz", 0);
  if (fd < 0) return 0;
  if (write(fd, data + 1, size - 1) != static_cast<ssize_t>(size - 1)) {
    close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    switch (mode % 3) {
      case 0:
        nas::data::read_idx(path);
        break;
      case 1: {
        nas::data::ImageSet set;
        nas::data::read_cifar_file(path, (mode >> 2) & 1 ? 2 : 1, set);
        break;
      }
      default: {
        nas::data::CsvOptions o;
        o.header = (mode >> 2) & 1;
        o.label = (mode >> 3) & 1 ? "#0" : "label";
        if (!o.header) o.label = "#0";
        o.regression = (mode >> 4) & 1;
        nas::data::load_csv(path, o, true);
        break;
      }
    }
  } catch (const nas::Error&) {
  }
  close(fd);
  return 0;
}
