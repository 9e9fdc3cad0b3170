#include "dist/dist.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/log.h"

#ifdef NAS_HAVE_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef NAS_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace nas::dist {
namespace {

std::shared_ptr<Group>& world_ptr() {
  static std::shared_ptr<Group> g;
  return g;
}

std::string first_line(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > 300 ? l.substr(0, 300) + "..." : l;
}

// An integer variable in [lo, hi]; UsageError naming it otherwise.
int int_var(const char* name, const char* v, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  long x = v ? std::strtol(v, &end, 10) : 0;
  NAS_CHECK(v && *v && end && *end == '\0' && errno == 0 && x >= lo && x <= hi, UsageError,
            "environment variable " << name << "=" << (v ? v : "") << ": expected an integer in [" << lo << ", " << hi
                                    << "]");
  return static_cast<int>(x);
}

bool loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

}  // namespace

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* k) -> const char* {
    const char* v = getenv_fn ? getenv_fn(k) : std::getenv(k);
    return v && *v ? v : nullptr;
  };
  // Each launcher's names for rank, world size, local rank, local world size. mpirun and srun set
  // theirs in every job; they mean a distributed run only with MASTER_ADDR set. Open MPI first:
  // under SLURM its daemons are started by srun, and its ranks inherit the daemons' SLURM_PROCID.
  // SLURM only inside an srun step (SLURM_STEP_NUM_TASKS), not in the batch script around it.
  struct Names {
    const char *launcher, *rank, *world, *local, *local_world;
  };
  static const Names kLaunchers[] = {
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
      {"mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"slurm", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE"}};
  const Names* n = nullptr;
  if (get("RANK") || get("WORLD_SIZE"))
    n = &kLaunchers[0];
  else if (get("MASTER_ADDR"))
    for (const auto& l : kLaunchers)
      if (!n && get(l.rank) && (std::string(l.launcher) != "slurm" || get(l.world))) n = &l;
  LaunchEnv e;
  if (!n) return e;  // one process
  e.launcher = n->launcher;
  const char *rank = get(n->rank), *world = get(n->world), *local = get(n->local), *local_world = get(n->local_world);
  NAS_CHECK(world, UsageError, "environment variable " << n->world << " is not set (" << n->rank
                                   << " is): expected the number of processes");
  NAS_CHECK(rank, UsageError, "environment variable " << n->rank << " is not set (" << n->world
                                  << " is): expected this process's rank, 0 to " << n->world << "-1");
  e.world_size = int_var(n->world, world, 1, 1 << 20);
  e.rank = int_var(n->rank, rank, 0, e.world_size - 1);
  if (local) e.local_rank = int_var(n->local, local, 0, e.world_size - 1);
  e.local_world_size = e.world_size;
  if (local_world) {
    // SLURM_NTASKS_PER_NODE may read "2(x3)": its leading number is the count on this node.
    std::string lw = local_world;
    lw = lw.substr(0, lw.find('('));
    e.local_world_size = int_var(n->local_world, lw.c_str(), 1, e.world_size);
  }
  if (e.world_size == 1) return LaunchEnv{};  // a job of one: nothing to set up
  const char* addr = get("MASTER_ADDR");
  NAS_CHECK(addr, UsageError, "environment variable MASTER_ADDR is not set (" << n->world << "=" << e.world_size
                                  << "): expected the host name or address of rank 0");
  e.master_addr = addr;
  e.master_port = int_var("MASTER_PORT", get("MASTER_PORT"), 1, 65535);
  const char* agent = get("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  if (const char* r = get("TORCHELASTIC_RESTART_COUNT")) e.restart = int_var("TORCHELASTIC_RESTART_COUNT", r, 0, INT_MAX);
  return e;
}

Group* world() { return world_ptr().get(); }
void set_world(std::shared_ptr<Group> g) { world_ptr() = std::move(g); }
int rank() { return world() ? world()->rank() : 0; }
int world_size() { return world() ? world()->size() : 1; }
bool is_main() { return rank() == 0; }

#ifdef NAS_HAVE_C10D

struct Group::Impl {
  int rank = 0, size = 1;
  double timeout_s = 300;
  std::string backend = "gloo";
  int64_t bucket_bytes = int64_t{25} << 20;
  bool failed = false;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef NAS_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  // Runs a collective; a failure (a peer gone, a timeout) becomes a DistError and marks the group.
  template <class F>
  auto guarded(const char* what, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      failed = true;
      const std::string m = first_line(e.what());
      std::string low = m;
      for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      const bool timeout = low.find("timed out") != std::string::npos || low.find("timeout") != std::string::npos;
      const bool peer = low.find("connection") != std::string::npos || low.find("closed") != std::string::npos ||
                        low.find("reset") != std::string::npos || low.find("broken pipe") != std::string::npos;
      std::ostringstream os;
      os << "rank " << rank << ": " << what << " failed: ";
      if (timeout)
        os << "a peer rank did not answer within " << timeout_s << " s (--dist-timeout; hung or too slow): ";
      else if (peer)
        os << "a peer rank died (its connection closed): ";
      os << m;
      throw DistError(os.str());
    }
  }
  // Issues `issue(process group, {tensor})` for every tensor (NCCL for CUDA tensors when there is
  // one, else Gloo), then waits for all of them.
  template <class Issue>
  void each(std::vector<at::Tensor>& ts, const char* what, Issue&& issue) {
    guarded(what, [&] {
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto& t : ts) {
        std::vector<at::Tensor> one{t};
#ifdef NAS_HAVE_NCCL
        if (nccl && t.is_cuda()) {
          works.push_back(issue(*nccl, one));
          continue;
        }
#endif
        works.push_back(issue(*gloo, one));
      }
      for (auto& w : works) w->wait();
    });
  }
};

Group::Group(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Group::~Group() {
  // After a failure the peers may be gone: tearing the process group down could block on them.
  if (impl_ && impl_->failed) (void)impl_.release();
}
int Group::rank() const { return impl_->rank; }
int Group::size() const { return impl_->size; }
const std::string& Group::backend() const { return impl_->backend; }
int64_t Group::bucket_bytes() const { return impl_->bucket_bytes; }
bool Group::failed() const { return impl_->failed; }

void Group::allreduce_sum(std::vector<at::Tensor>& ts, const char* what) {
  impl_->each(ts, what, [](auto& pg, std::vector<at::Tensor>& one) { return pg.allreduce(one); });
}

void Group::broadcast(std::vector<at::Tensor>& ts, int root, const char* what) {
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  impl_->each(ts, what, [&](auto& pg, std::vector<at::Tensor>& one) { return pg.broadcast(one, bo); });
}

std::vector<std::string> Group::allgather(const std::string& s, const char* what) {
  return impl_->guarded(what, [&] {
    const int n = impl_->size;
    auto gather = [&](const at::Tensor& in) {
      std::vector<at::Tensor> input{in};
      std::vector<std::vector<at::Tensor>> out(1);
      for (int r = 0; r < n; ++r) out[0].push_back(torch::empty_like(in));
      impl_->gloo->allgather(out, input)->wait();
      return out[0];
    };
    auto lens = gather(torch::full({1}, static_cast<int64_t>(s.size()), torch::kInt64));
    int64_t longest = 1;
    for (auto& l : lens) longest = std::max(longest, l.item<int64_t>());
    at::Tensor buf = torch::zeros({longest}, torch::kUInt8);
    std::memcpy(buf.data_ptr<uint8_t>(), s.data(), s.size());
    auto all = gather(buf);
    std::vector<std::string> res;
    for (int r = 0; r < n; ++r)
      res.emplace_back(reinterpret_cast<const char*>(all[r].data_ptr<uint8_t>()),
                       static_cast<size_t>(lens[r].item<int64_t>()));
    return res;
  });
}

bool Group::any(bool flag, const char* what) {
  return impl_->guarded(what, [&] {
    std::vector<at::Tensor> t{torch::full({1}, flag ? 1 : 0, torch::kInt32)};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::MAX;
    impl_->gloo->allreduce(t, o)->wait();
    return t[0].item<int>() != 0;
  });
}

void Group::barrier(const char* what) {
  // An all-reduce of one value, rather than ProcessGroupGloo::barrier: the same timeout and the
  // same error on every backend.
  (void)any(false, what);
}

void Group::check_same(const std::string& value, const std::string& what) {
  auto all = allgather(value, "comparing settings across ranks");
  for (size_t r = 1; r < all.size(); ++r)
    NAS_CHECK(all[r] == all[0], UsageError,
              "rank " << r << "'s " << what << " differs from rank 0's: every rank must run the same command on the "
                      << "same files (" << first_line(all[r]) << " vs " << first_line(all[0]) << ")");
}

bool available() { return true; }

std::shared_ptr<Group> init(const LaunchEnv& env, const GroupOptions& o) {
  auto im = std::make_unique<Group::Impl>();
  im->rank = env.rank;
  im->size = env.world_size;
  im->timeout_s = o.timeout_s;
  im->bucket_bytes = o.bucket_bytes;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  const bool server = env.rank == 0 && !env.agent_store;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = server;
    so.numWorkers = env.world_size;
    so.waitWorkers = false;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    im->store = c10::make_intrusive<c10d::PrefixStore>("nas/" + std::to_string(env.restart), tcp);
  } catch (const std::exception& e) {
    std::string m = e.what();
    if (server && (m.find("in use") != std::string::npos || m.find("EADDRINUSE") != std::string::npos ||
                   m.find("errno: 98") != std::string::npos))
      throw UsageError("MASTER_PORT=" + std::to_string(env.master_port) +
                       ": the port is in use on this machine (another job, or an earlier run still exiting): "
                       "choose another MASTER_PORT");
    if (server)
      throw UsageError("MASTER_ADDR=" + env.master_addr + ", MASTER_PORT=" + std::to_string(env.master_port) +
                       ": rank 0 cannot host the rendezvous there: " + first_line(m));
    throw DistError("rank " + std::to_string(env.rank) + ": no rendezvous at " + where + " within " +
                    std::to_string(static_cast<int>(o.timeout_s)) +
                    " s (--dist-timeout): is rank 0 running, and MASTER_ADDR reachable from here? " + first_line(m));
  }
  try {
    im->store->add("joined", 1);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (loopback(env.master_addr))
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    im->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(im->store, env.rank, env.world_size, opts);
  } catch (const std::exception& e) {
    int64_t joined = -1;
    try {
      joined = im->store->add("joined", 0);
    } catch (...) {
    }
    throw DistError("rank " + std::to_string(env.rank) + ": not all WORLD_SIZE=" + std::to_string(env.world_size) +
                    " ranks joined at " + where + " within " + std::to_string(static_cast<int>(o.timeout_s)) + " s" +
                    (joined >= 0 ? " (" + std::to_string(joined) + " did)" : "") + ": " + first_line(e.what()));
  }
  const bool cuda = o.device == "cuda";
  NAS_CHECK(o.backend != "nccl" || cuda, UsageError, "--dist-backend nccl: needs --device cuda");
#ifdef NAS_HAVE_NCCL
  if (cuda) c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank % std::max(1, static_cast<int>(torch::cuda::device_count()))));
  if (cuda && o.backend != "gloo") {
    // Without blocking waits, wait() only orders CUDA streams: a dead peer would hang the host in
    // its next copy instead of raising an error (both variable names: LibTorch 1.13 and 2.x).
    setenv("NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
    auto nopts = c10d::ProcessGroupNCCL::Options::create();
    nopts->timeout = timeout;
    im->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", im->store),
                                                          env.rank, env.world_size, nopts);
    im->backend = "nccl";
  }
#else
  NAS_CHECK(o.backend != "nccl", UsageError, "--dist-backend nccl: this LibTorch has no NCCL (use gloo)");
#endif
  auto g = std::make_shared<Group>(std::move(im));
  g->barrier("the rendezvous barrier");
  return g;
}

#else  // no c10d in this LibTorch

struct Group::Impl {};
Group::Group(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Group::~Group() = default;
int Group::rank() const { return 0; }
int Group::size() const { return 1; }
const std::string& Group::backend() const {
  static const std::string none = "none";
  return none;
}
bool Group::failed() const { return false; }
int64_t Group::bucket_bytes() const { return 0; }
void Group::allreduce_sum(std::vector<at::Tensor>&, const char*) {}
void Group::broadcast(std::vector<at::Tensor>&, int, const char*) {}
std::vector<std::string> Group::allgather(const std::string& s, const char*) { return {s}; }
bool Group::any(bool flag, const char*) { return flag; }
void Group::barrier(const char*) {}
void Group::check_same(const std::string&, const std::string&) {}
bool available() { return false; }
std::shared_ptr<Group> init(const LaunchEnv& env, const GroupOptions&) {
  throw UsageError("WORLD_SIZE=" + std::to_string(env.world_size) +
                   ": this build has no distributed support (LibTorch without c10d/Gloo headers); run one process");
}

#endif

double average_gradients(Group& g, const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  const double t0 = now_seconds();
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  // Buckets of consecutive gradients with one dtype and device, at most bucket_bytes each (a
  // larger gradient gets a bucket of its own).
  std::vector<std::vector<at::Tensor>> buckets;
  int64_t bytes = 0;
  for (const auto& gr : grads) {
    int64_t b = gr.numel() * static_cast<int64_t>(gr.element_size());
    bool fits = !buckets.empty() && bytes + b <= bucket_bytes && buckets.back().front().scalar_type() == gr.scalar_type() &&
                buckets.back().front().device() == gr.device();
    if (!fits) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(gr);
    bytes += b;
  }
  std::vector<at::Tensor> flat;
  for (const auto& b : buckets) {
    std::vector<at::Tensor> views;
    for (const auto& gr : b) views.push_back(gr.reshape({-1}));
    flat.push_back(torch::cat(views));
  }
  g.allreduce_sum(flat, "the gradient all-reduce");
  const double inv = 1.0 / g.size();
  for (size_t i = 0; i < buckets.size(); ++i) {
    flat[i].mul_(inv);
    int64_t off = 0;
    for (auto& gr : buckets[i]) {
      gr.copy_(flat[i].narrow(0, off, gr.numel()).view_as(gr));
      off += gr.numel();
    }
  }
  return now_seconds() - t0;
}

}  // namespace nas::dist
