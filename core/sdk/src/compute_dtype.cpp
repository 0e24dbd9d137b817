// Compute dtype: CPU bf16 detection from /proc/cpuinfo and the --dtype choice shared by the commands.
#include "sapling/compute_dtype.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/log.hpp"

namespace sapling {

namespace {

// The flags of the first processor in /proc/cpuinfo; empty where there is none (not Linux).
std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
  return "";
}

}  // namespace

std::string CpuMatrixUnits::describe() const {
  std::string out;
  if (amx_bf16) out += "amx_bf16";
  if (avx512_bf16) out += std::string(out.empty() ? "" : " ") + "avx512_bf16";
  if (out.empty()) out = "no bf16 units";
  return forced ? out + ", forced by SAPLING_CPU_BF16" : out;
}

CpuMatrixUnits cpu_matrix_units() {
  CpuMatrixUnits units;
  if (const char* force = std::getenv("SAPLING_CPU_BF16"); force && *force) {
    const std::string value(force);
    if (value != "0" && value != "1") fail("SAPLING_CPU_BF16='", value, "': expected 1 (has bf16 units) or 0 (has none)");
    units.avx512_bf16 = value == "1";
    units.forced = true;
    return units;
  }
  const std::string flags = cpu_flags();
  units.avx512_bf16 = flags.find(" avx512_bf16 ") != std::string::npos;
  units.amx_bf16 = flags.find(" amx_bf16 ") != std::string::npos;
  return units;
}

torch::ScalarType resolve_compute_dtype(const std::string& requested, const torch::Device& device,
                                        const std::string& setting) {
  if (requested == "fp32" || requested == "float32") return torch::kFloat32;
  const bool cpu = !device.is_cuda();
  if (requested == "auto") {
    if (!cpu) return torch::kBFloat16;
    return cpu_matrix_units().bf16() ? torch::kBFloat16 : torch::kFloat32;
  }
  if (requested == "bf16" || requested == "bfloat16") {
    if (cpu) {
      const CpuMatrixUnits units = cpu_matrix_units();
      if (!units.bf16())
        warn(setting, " bf16: this CPU has no bf16 matrix units (", units.describe(),
             "); bf16 runs emulated and slower than float32");
    }
    return torch::kBFloat16;
  }
  if (requested == "fp16" || requested == "float16") {
    if (cpu) fail(setting, " fp16 needs --device cuda; on the CPU use bf16 (or auto)");
    return torch::kFloat16;
  }
  fail(setting, " '", requested, "': expected auto, fp32, bf16 or fp16");
}

std::string compute_dtype_name(torch::ScalarType dtype) {
  if (dtype == torch::kFloat32) return "fp32";
  return dtype == torch::kBFloat16 ? "bf16" : "fp16";
}

std::string torch_dtype_name(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return "bfloat16";
  return dtype == torch::kFloat16 ? "float16" : "float32";
}

std::string describe_compute(torch::ScalarType dtype, const torch::Device& device) {
  std::ostringstream os;
  if (dtype == torch::kFloat32) {
    os << "float32 on " << device.str();
  } else {
    os << compute_dtype_name(dtype) << " autocast on " << device.str();
    if (!device.is_cuda()) os << " (" << cpu_matrix_units().describe() << "; matrix products through oneDNN)";
  }
  return os.str();
}

double measure_peak_tflops(const torch::Device& device, torch::ScalarType dtype) {
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const auto a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  const auto wait = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  auto c = torch::mm(a, b);  // warm-up: thread pools, oneDNN primitive creation
  wait();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    c = torch::mm(a, b);
    wait();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * static_cast<double>(n * n * n) / seconds / 1e12);
  }
  return best;
}

torch::Tensor to_device(const torch::Tensor& host, const torch::Device& device) {
  if (!device.is_cuda() || !host.device().is_cpu()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace sapling
