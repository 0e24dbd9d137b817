// AutocastGuard and AutocastPause: CUDA or CPU autocast on and off with the API of the LibTorch in use.
#include "sapling/autocast.hpp"

#include <ATen/autocast_mode.h>

namespace sapling {
namespace {

// LibTorch >= 2.4 names the device; 1.x and early 2.x have one set of calls per device kind. These four are
// the only places that know which.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
void set_autocast_enabled(bool cuda, bool on) { at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on); }
torch::ScalarType autocast_dtype(bool cuda) { return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU); }
void set_autocast_dtype(bool cuda, torch::ScalarType dtype) {
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
}
#else
bool autocast_enabled(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_autocast_enabled(bool cuda, bool on) {
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
}
torch::ScalarType autocast_dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(bool cuda, torch::ScalarType dtype) {
  if (cuda) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
}
#endif

}  // namespace

AutocastGuard::AutocastGuard(const torch::Device& device, torch::ScalarType dtype) {
  if (dtype == torch::kFloat32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  previous_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = autocast_dtype(cuda_);
  set_autocast_dtype(cuda_, dtype);
  set_autocast_enabled(cuda_, true);
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  set_autocast_enabled(cuda_, previous_enabled_);
  set_autocast_dtype(cuda_, previous_dtype_);
  at::autocast::clear_cache();
}

AutocastPause::AutocastPause() : cpu_was_enabled_(autocast_enabled(false)), cuda_was_enabled_(autocast_enabled(true)) {
  if (cpu_was_enabled_) set_autocast_enabled(false, false);
  if (cuda_was_enabled_) set_autocast_enabled(true, false);
}

AutocastPause::~AutocastPause() {
  if (cpu_was_enabled_) set_autocast_enabled(false, true);
  if (cuda_was_enabled_) set_autocast_enabled(true, true);
}

}  // namespace sapling
