// c10d Gloo process group from torchrun-style environment variables; flattened all-reduce and broadcast.
#include "sapling/distributed.hpp"

#include <csignal>
#include <chrono>
#include <cstdlib>

#include "sapling/error.hpp"

#ifdef SAPLING_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
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

#ifdef SAPLING_HAVE_GLOO
// One float32 CPU buffer holding every tensor, so a call is one collective.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : tensors) parts.push_back(t.detach().reshape({-1}).to(torch::kCPU, torch::kFloat32));
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
#endif

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

#ifdef SAPLING_HAVE_GLOO
struct DataParallel::Group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> process_group;
};
#else
struct DataParallel::Group {};
#endif

DataParallel::DataParallel(const LaunchEnvironment& environment, double timeout_seconds)
    : rank_(environment.rank), world_size_(environment.world_size) {
  if (world_size_ == 1) return;
#ifdef SAPLING_HAVE_GLOO
  // Gloo writes with writev(2), which raises SIGPIPE when a peer has died; the
  // default action would kill this rank silently (exit 141) before the failed
  // collective can name the peer. Python ignores SIGPIPE, so PyTorch never
  // sees it; we do the same so the write returns EPIPE and becomes our error.
  std::signal(SIGPIPE, SIG_IGN);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000.0));
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(environment.master_port);
  store_options.isServer = rank_ == 0;
  store_options.numWorkers = static_cast<size_t>(world_size_);
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(environment.master_addr, store_options);
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
    group_ = std::make_unique<Group>();
    group_->process_group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, world_size_, options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("data-parallel launch: rank ", rank_, " of ", world_size_, " could not join the group at ",
         environment.master_addr, ":", environment.master_port, ": ", e.what());
  }
#else
  (void)timeout_seconds;
  fail("data-parallel launch: WORLD_SIZE=", world_size_, " but this build has no c10d Gloo backend (libgloo-dev headers were not found at configure time)");
#endif
}

DataParallel::~DataParallel() = default;

void DataParallel::all_reduce(const std::vector<torch::Tensor>& tensors, bool average) {
  if (world_size_ == 1 || tensors.empty()) return;
#ifdef SAPLING_HAVE_GLOO
  std::vector<torch::Tensor> buffer{flatten(tensors)};
  try {
    group_->process_group->allreduce(buffer)->wait();
  } catch (const std::exception& e) {
    fail("data-parallel all-reduce failed on rank ", rank_, " (a peer died or timed out): ", e.what());
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
#ifdef SAPLING_HAVE_GLOO
  std::vector<torch::Tensor> buffer{flatten(tensors)};
  try {
    group_->process_group->broadcast(buffer)->wait();
  } catch (const std::exception& e) {
    fail("data-parallel broadcast failed on rank ", rank_, " (a peer died or timed out): ", e.what());
  }
  unflatten_into(buffer[0], tensors);
#endif
}

void DataParallel::barrier() {
  if (world_size_ == 1) return;
  // An all-reduce of one value: unlike Gloo's barrier it honours the timeout.
  auto token = torch::zeros({1});
  sum({token});
}

}  // namespace sapling
