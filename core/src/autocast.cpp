// AutocastGuard and AutocastPause: CUDA or CPU autocast on and off with the API of the LibTorch in use.
#include "sapling/autocast.hpp"

#include <ATen/autocast_mode.h>

namespace sapling {

// LibTorch >= 2.4 names the device; 1.x and early 2.x have one set of calls per device kind.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SAPLING_AUTOCAST_BY_DEVICE 1
#endif

AutocastGuard::AutocastGuard(const torch::Device& device, torch::ScalarType dtype) {
  if (dtype == torch::kFloat32) return;
  active_ = true;
  cuda_ = device.is_cuda();
#ifdef SAPLING_AUTOCAST_BY_DEVICE
  const auto kind = cuda_ ? at::kCUDA : at::kCPU;
  previous_enabled_ = at::autocast::is_autocast_enabled(kind);
  previous_dtype_ = at::autocast::get_autocast_dtype(kind);
  at::autocast::set_autocast_dtype(kind, dtype);
  at::autocast::set_autocast_enabled(kind, true);
#else
  if (cuda_) {
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    previous_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
#endif
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
#ifdef SAPLING_AUTOCAST_BY_DEVICE
  const auto kind = cuda_ ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(kind, previous_enabled_);
  at::autocast::set_autocast_dtype(kind, previous_dtype_);
#else
  if (cuda_) {
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_cpu_enabled(previous_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  }
#endif
  at::autocast::clear_cache();
}

namespace {

bool autocast_enabled(bool cuda) {
#ifdef SAPLING_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast_enabled(bool cuda, bool on) {
#ifdef SAPLING_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
#else
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

}  // namespace

AutocastPause::AutocastPause() : cpu_was_enabled_(autocast_enabled(false)), cuda_was_enabled_(autocast_enabled(true)) {
  if (cpu_was_enabled_) set_autocast_enabled(false, false);
  if (cuda_was_enabled_) set_autocast_enabled(true, false);
}

AutocastPause::~AutocastPause() {
  if (cpu_was_enabled_) set_autocast_enabled(false, true);
  if (cuda_was_enabled_) set_autocast_enabled(true, true);
}

}  // namespace sapling
