// c10d process group (Gloo or NCCL) from torchrun-style environment variables; flattened all-reduce and broadcast.
#include "sapling/internal/distributed.hpp"

#include <csignal>
#include <chrono>
#include <cstdlib>

#include "sapling/error.hpp"

#include <torch/version.h>

#if defined(SAPLING_HAVE_GLOO) || defined(SAPLING_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#endif
#ifdef SAPLING_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SAPLING_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace sapling {

namespace {

std::string environment_value(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

int integer_variable(const char* name, int fallback, bool required) {
  const auto text = environment_value(name);
  if (text.empty()) {
    if (required) fail("data-parallel launch: environment variable ", name, " is not set (WORLD_SIZE > 1 needs RANK, MASTER_ADDR, MASTER_PORT)");
    return fallback;
  }
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size()) fail("data-parallel launch: environment variable ", name, "='", text, "' is not an integer");
  return value;
}

// One float32 buffer holding every tensor, on `device`, so a call is one collective.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors, const torch::Device& device) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : tensors) parts.push_back(t.detach().reshape({-1}).to(device, torch::kFloat32));
  return torch::cat(parts);
}

void unflatten_into(const torch::Tensor& buffer, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(buffer.slice(0, offset, offset + n).view(t.sizes()));
    offset += n;
  }
}

}  // namespace

LaunchEnvironment launch_environment() {
  LaunchEnvironment env;
  env.world_size = integer_variable("WORLD_SIZE", 1, false);
  if (env.world_size < 1) fail("data-parallel launch: WORLD_SIZE=", env.world_size, " must be at least 1");
  const bool multi = env.world_size > 1;
  env.rank = integer_variable("RANK", 0, multi);
  env.local_rank = integer_variable("LOCAL_RANK", env.rank, false);
  if (env.rank < 0 || env.rank >= env.world_size)
    fail("data-parallel launch: RANK=", env.rank, " is outside 0..", env.world_size - 1, " (WORLD_SIZE=", env.world_size, ")");
  if (multi) {
    env.master_addr = environment_value("MASTER_ADDR");
    if (env.master_addr.empty()) fail("data-parallel launch: environment variable MASTER_ADDR is not set");
    env.master_port = integer_variable("MASTER_PORT", 0, true);
    if (env.master_port < 1 || env.master_port > 65535)
      fail("data-parallel launch: MASTER_PORT=", env.master_port, " is not a port number");
  }
  return env;
}

CollectiveBackend resolve_backend(const std::string& name, const torch::Device& device, const std::string& setting) {
  if (name == "auto") return device.is_cuda() ? CollectiveBackend::Nccl : CollectiveBackend::Gloo;
  if (name == "gloo") return CollectiveBackend::Gloo;
  if (name == "nccl") {
    if (!device.is_cuda())
      fail(setting, " = \"nccl\" needs a CUDA device, but the run's device is ", device.str(),
           " (NCCL reduces GPU memory; use \"gloo\" or \"auto\" on the CPU)");
    return CollectiveBackend::Nccl;
  }
  fail(setting, " = \"", name, "\": expected \"auto\", \"gloo\" or \"nccl\"");
}

const char* backend_name(CollectiveBackend backend) { return backend == CollectiveBackend::Nccl ? "nccl" : "gloo"; }

torch::Device process_device(const std::string& name, const LaunchEnvironment& environment, const std::string& setting) {
  if (name == "cpu") return torch::kCPU;
  const bool available = torch::cuda::is_available();
  if (name == "auto" && !available) return torch::kCPU;
  if (!available) fail(setting, " = \"", name, "\" but no CUDA device is available in this build or machine");
  torch::Device device = torch::kCPU;
  try {
    device = torch::Device(name == "auto" ? std::string("cuda") : name);
  } catch (const std::exception&) {
    device = torch::kCPU;
  }
  if (!device.is_cuda()) fail(setting, " = \"", name, "\": expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
  const auto count = static_cast<int>(torch::cuda::device_count());
  const int index = device.has_index() ? device.index() : environment.local_rank;
  if (index < 0 || index >= count)
    fail(setting, " = \"", name, "\": ", device.has_index() ? "device index " : "LOCAL_RANK=", index,
         " but this machine has ", count, " CUDA device", count == 1 ? "" : "s",
         device.has_index() ? "" : " (one process per GPU: LOCAL_RANK is 0..GPUs-1 on each node)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

#if defined(SAPLING_HAVE_GLOO) || defined(SAPLING_HAVE_NCCL)
// The backends' common base: c10d::Backend since LibTorch 2.0, c10d::ProcessGroup in 1.x (the light 1.13 build).
#if TORCH_VERSION_MAJOR >= 2
using CollectiveGroup = c10d::Backend;
#else
using CollectiveGroup = c10d::ProcessGroup;
#endif
struct DataParallel::Group {
  c10::intrusive_ptr<CollectiveGroup> process_group;
};
#else
struct DataParallel::Group {};
#endif

namespace {

#if defined(SAPLING_HAVE_GLOO) || defined(SAPLING_HAVE_NCCL)
c10::intrusive_ptr<c10d::Store> connect_store(const LaunchEnvironment& environment, int world_size,
                                              std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(environment.master_port);
  store_options.isServer = environment.rank == 0;
  store_options.numWorkers = static_cast<size_t>(world_size);
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(environment.master_addr, store_options);
}
#endif

#ifdef SAPLING_HAVE_GLOO
c10::intrusive_ptr<CollectiveGroup> gloo_group(const c10::intrusive_ptr<c10d::Store>& store, const LaunchEnvironment& environment,
                                             int world_size, std::chrono::milliseconds timeout) {
  // Gloo writes with writev(2), which raises SIGPIPE when a peer has died; the
  // default action would kill this rank silently (exit 141) before the failed
  // collective can name the peer. Python ignores SIGPIPE, so PyTorch never
  // sees it; we do the same so the write returns EPIPE and becomes our error.
  std::signal(SIGPIPE, SIG_IGN);
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // GLOO_SOCKET_IFNAME picks the interface as in PyTorch; a loopback master
  // needs a loopback device (the host name may not resolve in containers).
  const auto interface = environment_value("GLOO_SOCKET_IFNAME");
  if (!interface.empty())
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  else if (environment.master_addr == "127.0.0.1" || environment.master_addr == "localhost")
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, environment.rank, world_size, options);
}
#endif

#ifdef SAPLING_HAVE_NCCL
c10::intrusive_ptr<CollectiveGroup> nccl_group(const c10::intrusive_ptr<c10d::Store>& store, const LaunchEnvironment& environment,
                                             int world_size, std::chrono::milliseconds timeout, const torch::Device& device) {
  // Blocking wait: a collective that exceeds the timeout throws in wait() (the dead-worker promise: a named
  // error, not a hang or a watchdog abort of the process). An explicit setting in the environment wins.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  c10::cuda::set_device(device.index());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, environment.rank, world_size, options);
}
#endif

}  // namespace

DataParallel::DataParallel(const LaunchEnvironment& environment, double timeout_seconds, CollectiveBackend backend,
                           torch::Device device)
    : rank_(environment.rank), world_size_(environment.world_size), backend_(backend),
      device_(backend == CollectiveBackend::Nccl ? device : torch::Device(torch::kCPU)) {
  if (backend_ == CollectiveBackend::Nccl && !device.is_cuda())
    fail("data-parallel launch: the NCCL backend needs the process's CUDA device, got ", device.str());
  if (world_size_ == 1) return;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000.0));
#ifndef SAPLING_HAVE_GLOO
  if (backend_ == CollectiveBackend::Gloo)
    fail("data-parallel launch: WORLD_SIZE=", world_size_, " with the Gloo backend, but this build has no c10d Gloo "
         "(Gloo's headers, libgloo-dev, were not found at configure time)");
#endif
#ifndef SAPLING_HAVE_NCCL
  if (backend_ == CollectiveBackend::Nccl)
    fail("data-parallel launch: WORLD_SIZE=", world_size_, " with the NCCL backend, but this build has no c10d NCCL "
         "(a CUDA build with nccl.h is needed; [train] backend = \"gloo\" reduces through the CPU)");
#endif
#if defined(SAPLING_HAVE_GLOO) || defined(SAPLING_HAVE_NCCL)
  try {
    auto store = connect_store(environment, world_size_, timeout);
    group_ = std::make_unique<Group>();
#ifdef SAPLING_HAVE_NCCL
    if (backend_ == CollectiveBackend::Nccl) group_->process_group = nccl_group(store, environment, world_size_, timeout, device_);
#endif
#ifdef SAPLING_HAVE_GLOO
    if (backend_ == CollectiveBackend::Gloo) group_->process_group = gloo_group(store, environment, world_size_, timeout);
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("data-parallel launch: rank ", rank_, " of ", world_size_, " could not join the ", backend_name(backend_),
         " group at ", environment.master_addr, ":", environment.master_port, ": ", e.what());
  }
#else
  (void)timeout;
#endif
}

DataParallel::~DataParallel() = default;

void DataParallel::all_reduce(const std::vector<torch::Tensor>& tensors, bool average) {
  if (world_size_ == 1 || tensors.empty()) return;
#if defined(SAPLING_HAVE_GLOO) || defined(SAPLING_HAVE_NCCL)
  std::vector<torch::Tensor> buffer{flatten(tensors, device_)};
  try {
    group_->process_group->allreduce(buffer)->wait();
  } catch (const std::exception& e) {
    fail("data-parallel all-reduce (", backend_name(backend_), ") failed on rank ", rank_, " (a peer died or timed out): ", e.what());
  }
  if (average) buffer[0].div_(world_size_);
  unflatten_into(buffer[0], tensors);
#else
  (void)average;
#endif
}

void DataParallel::average(const std::vector<torch::Tensor>& tensors) { all_reduce(tensors, true); }
void DataParallel::sum(const std::vector<torch::Tensor>& tensors) { all_reduce(tensors, false); }

void DataParallel::broadcast_from_main(const std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1 || tensors.empty()) return;
#if defined(SAPLING_HAVE_GLOO) || defined(SAPLING_HAVE_NCCL)
  std::vector<torch::Tensor> buffer{flatten(tensors, device_)};
  try {
    group_->process_group->broadcast(buffer)->wait();
  } catch (const std::exception& e) {
    fail("data-parallel broadcast (", backend_name(backend_), ") failed on rank ", rank_, " (a peer died or timed out): ", e.what());
  }
  unflatten_into(buffer[0], tensors);
#endif
}

void DataParallel::barrier() {
  if (world_size_ == 1) return;
  // An all-reduce of one value: unlike Gloo's barrier it honours the timeout.
  auto token = torch::zeros({1}, torch::TensorOptions().device(device_));
  sum({token});
}

}  // namespace sapling
