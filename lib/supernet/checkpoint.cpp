#include "supernet/checkpoint.h"

#include "core/build_info.h"
#include "core/error.h"
#include "core/io.h"
#include "families/family.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

namespace nas::supernet {
namespace {

constexpr const char* kMetaKey = "nas_meta";

std::string first_line(const std::string& s) {
  auto pos = s.find('\n');
  std::string l = pos == std::string::npos ? s : s.substr(0, pos);
  return l.size() > 160 ? l.substr(0, 160) + "..." : l;
}

torch::serialize::InputArchive open_archive(const std::string& path) {
  check_readable_file(path);
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path, torch::kCPU);  // a checkpoint saved on a GPU loads on a CPU-only host
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": corrupt or truncated checkpoint (" + first_line(e.what_without_backtrace()) + ")");
  }
  return ar;
}

CheckpointMeta read_meta(torch::serialize::InputArchive& ar, const std::string& path) {
  c10::IValue v;
  bool ok = false;
  try {
    ok = ar.try_read(kMetaKey, v);
  } catch (const c10::Error&) {
    ok = false;
  }
  NAS_CHECK(ok && v.isString(), CheckpointError, path << ": not a nas-toolchain checkpoint (no metadata record)");
  spec::json j;
  try {
    j = spec::json::parse(v.toStringRef());
  } catch (const spec::json::exception&) {
    throw CheckpointError(path + ": checkpoint metadata is not valid JSON");
  }
  try {
    return meta_from_json(j, path);
  } catch (const SpecError& e) {
    throw CheckpointError(std::string("invalid checkpoint metadata: ") + e.what());
  }
}

// Loads tensors into `net`, which keeps its device, and checks every shape: LibTorch's archive
// reader replaces tensors without comparing sizes.
void load_tensors(torch::serialize::InputArchive& ar, torch::nn::Module& net, const std::string& path) {
  std::map<std::string, std::vector<int64_t>> shapes;
  torch::Device device = torch::kCPU;
  for (const auto& p : net.named_parameters()) {
    shapes[p.key()] = p.value().sizes().vec();
    device = p.value().device();
  }
  for (const auto& b : net.named_buffers()) shapes[b.key()] = b.value().sizes().vec();
  try {
    net.load(ar);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": checkpoint tensors do not match its metadata (" +
                          first_line(e.what_without_backtrace()) + ")");
  }
  auto check = [&](const std::string& name, const torch::Tensor& t) {
    NAS_CHECK(t.sizes().vec() == shapes[name], CheckpointError,
              path << ": tensor " << name << " has shape " << t.sizes() << ", expected "
                   << c10::IntArrayRef(shapes[name]) << " (checkpoint and metadata disagree)");
  };
  for (const auto& p : net.named_parameters()) check(p.key(), p.value());
  for (const auto& b : net.named_buffers()) check(b.key(), b.value());
  net.to(device);
}

void write_archive(const std::string& path, const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  write_via_temp(path, [&](const std::string& tmp) {
    torch::serialize::OutputArchive ar;
    fill(ar);
    // Our own writer: LibTorch's file writer throws from its destructor when a write fails (a full
    // disk), which terminates the process. This one reports every byte written, remembers the
    // first error, and the error is raised once the archive is done.
    FILE* f = std::fopen(tmp.c_str(), "wb");
    NAS_CHECK(f != nullptr, IoError, path << ": cannot write: " << std::strerror(errno));
    int err = 0;
    try {
      ar.save_to([&](const void* data, size_t n) -> size_t {
        if (err == 0 && n > 0 && std::fwrite(data, 1, n, f) != n) err = errno ? errno : EIO;
        return n;
      });
    } catch (const c10::Error& e) {
      std::fclose(f);
      throw IoError(path + ": cannot write checkpoint (" + first_line(e.what_without_backtrace()) + ")");
    }
    if (std::fflush(f) != 0 && err == 0) err = errno;
    if (std::fclose(f) != 0 && err == 0) err = errno;
    NAS_CHECK(err == 0, IoError, path << ": cannot write checkpoint: " << std::strerror(err));
  });
}

torch::Device device_of(torch::nn::Module& m) {
  for (const auto& p : m.parameters()) return p.device();
  return torch::kCPU;
}

// Optimizer state loads on the CPU; it must live where the parameters live.
void move_optimizer_state(torch::optim::Optimizer& opt, const torch::Device& device) {
  for (auto& kv : opt.state()) {
    auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
    if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(kv.second.get())) {
      sgd->momentum_buffer(move(sgd->momentum_buffer()));
    } else if (auto* rms = dynamic_cast<torch::optim::RMSpropParamState*>(kv.second.get())) {
      rms->square_avg(move(rms->square_avg()));
      rms->momentum_buffer(move(rms->momentum_buffer()));
      rms->grad_avg(move(rms->grad_avg()));
    }
  }
}

}  // namespace


namespace {
// FNV-1a over names and tensor bytes.
struct Digest {
  uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ULL;
    }
  }
  void add(const std::string& name, const torch::Tensor& t) {
    add(name.data(), name.size());
    if (!t.defined()) return;
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    add(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

// The optimizer's state tensors, parameter by parameter in group order (its state map is keyed by
// tensor addresses, whose order differs between processes).
std::string optimizer_digest(torch::optim::Optimizer& opt) {
  Digest d;
  for (const auto& g : opt.param_groups())
    for (const auto& p : g.params()) {
      auto it = opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it == opt.state().end()) continue;
      if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
        d.add("momentum", sgd->momentum_buffer());
      } else if (auto* rms = dynamic_cast<torch::optim::RMSpropParamState*>(it->second.get())) {
        d.add("square_avg", rms->square_avg());
        d.add("momentum", rms->momentum_buffer());
        d.add("grad_avg", rms->grad_avg());
      }
    }
  return d.hex();
}

void check_digest(const std::string& recorded, const std::string& actual, const std::string& path, const char* what) {
  NAS_CHECK(recorded.empty() || recorded == actual, CheckpointError,
            path << ": corrupt checkpoint: its " << what << " do not match the checksum written with them");
}
}  // namespace

std::string tensors_digest(torch::nn::Module& net) {
  Digest d;
  for (const auto& it : net.named_parameters()) d.add(it.key(), it.value());
  for (const auto& it : net.named_buffers()) d.add(it.key(), it.value());
  return d.hex();
}

void save_supernet(const std::string& path, Supernet& net, const CheckpointMeta& meta,
                   torch::optim::Optimizer* optimizer) {
  CheckpointMeta m = meta;
  m.type = "supernet";
  m.digest = tensors_digest(*net);
  m.optimizer_digest = optimizer ? optimizer_digest(*optimizer) : std::string();
  write_archive(path, [&](torch::serialize::OutputArchive& ar) {
    net->save(ar);
    ar.write(kMetaKey, c10::IValue(spec::compact_dump(meta_to_json(m))));
    if (optimizer) {
      torch::serialize::OutputArchive opt;
      optimizer->save(opt);
      ar.write("optimizer", opt);
    }
  });
}

void save_child(const std::string& path, families::ChildNet& net, const CheckpointMeta& meta) {
  CheckpointMeta m = meta;
  m.type = "child";
  m.arch = net->arch;
  m.digest = tensors_digest(*net);
  m.optimizer_digest.clear();  // children hold no optimizer state
  write_archive(path, [&](torch::serialize::OutputArchive& ar) {
    net->save(ar);
    ar.write(kMetaKey, c10::IValue(spec::compact_dump(meta_to_json(m))));
  });
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  auto ar = open_archive(path);
  return read_meta(ar, path);
}

CheckpointMeta restore_supernet(const std::string& path, Supernet& net, torch::optim::Optimizer* optimizer) {
  auto ar = open_archive(path);
  CheckpointMeta m = read_meta(ar, path);
  NAS_CHECK(m.type == "supernet", CheckpointError, path << ": expected a supernet checkpoint, found a " << m.type);
  load_tensors(ar, *net, path);
  check_digest(m.digest, tensors_digest(*net), path, "tensors");
  if (optimizer) {
    torch::serialize::InputArchive opt;
    NAS_CHECK(ar.try_read("optimizer", opt), CheckpointError, path << ": checkpoint holds no optimizer state");
    try {
      optimizer->load(opt);
      move_optimizer_state(*optimizer, device_of(*net));
    } catch (const c10::Error& e) {
      throw CheckpointError(path + ": optimizer state does not match (" + first_line(e.what_without_backtrace()) + ")");
    }
    check_digest(m.optimizer_digest, optimizer_digest(*optimizer), path, "optimizer state tensors");
  }
  return m;
}

LoadedSupernet load_supernet(const std::string& path, torch::optim::Optimizer* optimizer) {
  CheckpointMeta m = read_checkpoint_meta(path);
  NAS_CHECK(m.type == "supernet", CheckpointError, path << ": expected a supernet checkpoint, found a " << m.type);
  LoadedSupernet out;
  out.net = Supernet(m.space, m.in_channels, m.num_classes);
  out.meta = restore_supernet(path, out.net, optimizer);
  return out;
}

LoadedChild load_child(const std::string& path) {
  auto ar = open_archive(path);
  CheckpointMeta m = read_meta(ar, path);
  NAS_CHECK(m.type == "child", CheckpointError, path << ": expected a child checkpoint, found a " << m.type);
  try {
    families::validate_arch(*m.arch, m.space, path + " (embedded arch)");
  } catch (const SpecError& e) {
    throw CheckpointError(std::string("invalid checkpoint: ") + e.what());
  }
  LoadedChild out;
  out.meta = m;
  out.net = families::ChildNet(m.space, *m.arch, m.in_channels, m.num_classes);
  load_tensors(ar, *out.net, path);
  check_digest(m.digest, tensors_digest(*out.net), path, "tensors");
  return out;
}

}  // namespace nas::supernet
