// Reading of precomputed embedding files: a small .npy parser (core only writes .npy) and safetensors through core.
#include "embedding_file.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "sapling/error.hpp"
#include "sapling/files.hpp"        // for read_file
#include "sapling/safetensors.hpp"  // for SafetensorsFile

namespace sapling::precomputed {
namespace {

// The value of `key` in a .npy header dict ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"),
// as the text between its ': ' and the next top-level ',' (or the closing parenthesis for the shape).
std::string header_value(const std::string& header, const std::string& key, const std::string& file) {
  const std::string quoted = "'" + key + "'";
  size_t at = header.find(quoted);
  if (at == std::string::npos) fail(file, ": .npy header has no ", quoted, " (header: ", header, ")");
  at = header.find(':', at + quoted.size());
  if (at == std::string::npos) fail(file, ": .npy header: no value for ", quoted);
  ++at;
  while (at < header.size() && header[at] == ' ') ++at;
  const size_t end = header[at] == '(' ? header.find(')', at) + 1 : header.find(',', at);
  if (end == std::string::npos || end == 0) fail(file, ": .npy header: unterminated value of ", quoted);
  return header.substr(at, end - at);
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& file) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')')
    fail(file, ": .npy header: the shape '", text, "' is not a tuple such as (120, 1280)");
  std::vector<int64_t> shape;
  std::string number;
  for (char c : text.substr(1)) {
    if (c >= '0' && c <= '9') {
      number += c;
      // 15 digits: beyond any real file, and far from int64's limit, so std::stoll cannot overflow.
      if (number.size() > 15) fail(file, ": .npy header: a dimension of the shape ", text, " is too large");
    } else if (c == ',' || c == ')') {
      if (!number.empty()) shape.push_back(std::stoll(number));
      number.clear();
    } else if (c != ' ' && c != 'L') {
      fail(file, ": .npy header: cannot read the shape ", text);
    }
  }
  return shape;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

const char* kAccepted = "float16, bfloat16, float32 or float64";

}  // namespace

torch::Tensor parse_npy(const std::string& bytes, const std::string& file) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) fail(file, ": not a .npy file (no \\x93NUMPY magic)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(file, ": truncated .npy header");
    for (int b = 3; b >= 0; --b) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + b]);
    offset = 12;
  } else {
    fail(file, ": .npy format version ", int(major), " (1, 2 or 3 expected)");
  }
  if (offset + header_len > bytes.size()) fail(file, ": truncated .npy header");
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  std::string descr = header_value(header, "descr", file);
  if (descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"')) descr = descr.substr(1, descr.size() - 2);
  torch::ScalarType type;
  if (descr == "<f2") type = torch::kFloat16;
  else if (descr == "<f4") type = torch::kFloat32;
  else if (descr == "<f8") type = torch::kFloat64;
  else if (descr.size() > 1 && descr[0] == '>' && descr[1] == 'f')
    fail(file, ": big-endian dtype '", descr, "' (write it little-endian: array.astype('<f4'))");
  else
    fail(file, ": dtype '", descr, "'; embeddings must be ", kAccepted);
  const bool fortran = header_value(header, "fortran_order", file).rfind("True", 0) == 0;
  const std::vector<int64_t> shape = parse_shape(header_value(header, "shape", file), file);
  if (shape.size() != 2) fail(file, ": shape ", shape_text(shape), " has rank ", shape.size(), "; embeddings must be rank 2 [L, D]");

  const size_t item = torch::elementSize(type);
  const size_t data_bytes = bytes.size() - offset;
  size_t expected = 0;  // a hostile shape must not wrap around to the file's size
  if (__builtin_mul_overflow(static_cast<size_t>(shape[0]), static_cast<size_t>(shape[1]), &expected) ||
      __builtin_mul_overflow(expected, item, &expected))
    fail(file, ": ", data_bytes, " data bytes, but shape ", shape_text(shape), " of ", descr,
         " needs more than 2^64 (a wrong shape)");
  if (data_bytes != expected)
    fail(file, ": ", data_bytes, " data bytes, but shape ", shape_text(shape), " of ", descr, " needs ", expected,
         " (truncated or padded file)");
  // Fortran order stores the transpose's rows: read [D, L] and transpose.
  const std::vector<int64_t> stored = fortran ? std::vector<int64_t>{shape[1], shape[0]} : shape;
  torch::Tensor t = torch::empty(stored, torch::TensorOptions().dtype(type));
  // An empty array has no storage (data_ptr() is null), and memcpy's pointers must not be, even for 0 bytes.
  if (expected > 0) std::memcpy(t.data_ptr(), bytes.data() + offset, expected);
  return fortran ? t.t() : t;
}

namespace {

torch::Tensor read_safetensors(const std::filesystem::path& path) {
  const std::string file = path.string();
  const SafetensorsFile st(path);
  const std::vector<std::string> keys = st.keys();
  std::string key;
  if (keys.size() == 1) key = keys.front();
  else if (st.contains("embeddings")) key = "embeddings";
  else {
    std::string names;
    for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k;
    fail(file, ": holds ", keys.size(), " tensors (", names.empty() ? "none" : names,
         "); expected one, or one named 'embeddings'");
  }
  const TensorEntry& entry = st.header().tensors.at(key);
  const DType dtype = entry.dtype;
  if (dtype != DType::F16 && dtype != DType::BF16 && dtype != DType::F32 && dtype != DType::F64)
    fail(file, ": tensor '", key, "' is ", dtype_name(dtype), "; embeddings must be ", kAccepted);
  if (entry.shape.size() != 2)
    fail(file, ": tensor '", key, "' has shape ", shape_text(entry.shape), " (rank ", entry.shape.size(),
         "); embeddings must be rank 2 [L, D]");
  return st.get(key);
}

}  // namespace

bool is_embedding_file(const std::filesystem::path& file) {
  const std::string ext = file.extension().string();
  return ext == ".npy" || ext == ".safetensors";
}

torch::Tensor read_embedding_file(const std::filesystem::path& file) {
  if (!std::filesystem::is_regular_file(file)) fail(file.string(), ": no such file");
  torch::Tensor raw = file.extension() == ".npy" ? parse_npy(read_file(file), file.string()) : read_safetensors(file);
  // A copy (never a view of the mapping): nothing of the file is kept after this call.
  torch::Tensor values = raw.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true).contiguous();
  const torch::Tensor bad = torch::logical_not(torch::isfinite(values));
  if (bad.any().item<bool>()) {
    const torch::Tensor where = bad.nonzero()[0];
    const int64_t row = where[0].item<int64_t>(), column = where[1].item<int64_t>();
    const float value = values[row][column].item<float>();
    const bool overflow = torch::isfinite(raw.to(torch::kFloat64)[row][column]).item<bool>();
    fail(file.string(), ": row ", row, " (residue ", row + 1, "), column ", column, " is ", value,
         overflow ? " in float32 (the stored float64 value overflows it)" : "",
         "; embeddings must be finite (", bad.any(1).sum().item<int64_t>(), " of ", values.size(0), " rows are not)");
  }
  // Datasets and the trainer keep embeddings as float16: a larger value would become inf there.
  const torch::Tensor too_large = values.abs() > 65504.0f;
  if (too_large.any().item<bool>()) {
    const torch::Tensor where = too_large.nonzero()[0];
    const int64_t row = where[0].item<int64_t>(), column = where[1].item<int64_t>();
    fail(file.string(), ": row ", row, " (residue ", row + 1, "), column ", column, " is ", values[row][column].item<float>(),
         ", beyond float16 (|x| <= 65504), in which datasets and training keep embeddings; rescale them");
  }
  return values;
}

}  // namespace sapling::precomputed
