#pragma once
// Image datasets beyond IDX, read into the same ImageSet (uint8, N x H x W x C): CIFAR-10/100 binary
// files and image folders (one folder per class, PNG/JPEG/BMP/... via Debian's libstb-dev).
// Torch-free. Every reader names the file and what is wrong in an IoError.
#include <string>

#include "data/idx.h"
#include "spec/train_spec.h"

namespace nas::data {

// The formats of a nas.train spec's data.format.
//   idx:    Fashion-MNIST/MNIST IDX files in a directory (load_mnist_dir)
//   cifar:  CIFAR-10 (data_batch_1..5.bin, test_batch.bin: 1 label byte + 3072 pixel bytes per
//           record) or CIFAR-100 (train.bin, test.bin: coarse and fine label bytes + 3072; the fine
//           label is the class) binary files in a directory
//   folder: <dir>/train/<class>/<image> and <dir>/test/<class>/<image>; classes are the folder
//           names in sorted order; every image must have the first one's size and channels
//   csv:    a file of numeric features and a label column (data/csv.h; the DataSpec overload)
ImageSet load_dataset(const std::string& format, const std::string& dir, bool train);
// Any format of a nas.train spec's data section (csv included: data.path is the file).
ImageSet load_dataset(const spec::DataSpec& d, const std::string& path, bool train);

// CIFAR binary records of `label_bytes` label bytes (1: CIFAR-10, 2: CIFAR-100, fine label last)
// and 3 x 32 x 32 channel-planar pixels, appended to `set` (which must be empty or 32x32x3).
void read_cifar_file(const std::string& path, int label_bytes, ImageSet& set);
ImageSet load_cifar_dir(const std::string& dir, bool train);
// Whether this build decodes image files (libstb-dev was found).
bool image_decoding_available();
// The class folders of a split: sorted, hidden entries and plain files left out (at least 2).
std::vector<std::string> class_folders(const std::string& dir);
// Images of `dir`/<class>/..., labelled by the class's index in `classes` (the training split's
// class_folders, so that a test set with fewer classes keeps the same labels); a folder of
// another name is an error. Decoded pixels over `spill_above` bytes go to a mapped spill file.
ImageSet load_image_folder(const std::string& dir, const std::vector<std::string>& classes,
                           size_t spill_above = kSpillAboveBytes);

}  // namespace nas::data
