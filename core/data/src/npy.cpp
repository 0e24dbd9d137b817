// save_npy: the .npy 1.0 header (magic, dict with descr/fortran_order/shape, padded to 64 bytes) + raw data.
#include "sapling/npy.hpp"

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {

namespace {
const char* numpy_descr(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return "<f4";
    case torch::kFloat64: return "<f8";
    case torch::kFloat16: return "<f2";
    case torch::kInt64: return "<i8";
    case torch::kInt32: return "<i4";
    case torch::kInt16: return "<i2";
    case torch::kInt8: return "|i1";
    case torch::kUInt8: return "|u1";
    case torch::kBool: return "|b1";
    default: fail("cannot write ", c10::toString(type), " tensors as .npy (NumPy has no bfloat16)");
  }
}
}  // namespace

void save_npy(const std::filesystem::path& path, const torch::Tensor& tensor) {
  auto t = tensor.detach().to(torch::kCPU).contiguous();
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d) shape += std::to_string(t.size(d)) + (t.dim() == 1 ? "," : d + 1 < t.dim() ? ", " : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + numpy_descr(t.scalar_type()) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  write_file_atomic(path, out);
}

}  // namespace sapling
