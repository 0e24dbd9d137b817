// safetensors reading (memory-mapped, strictly validated) and writing (atomic), plus sharded HF checkpoints.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

SAPLING_API const char* dtype_name(DType dtype);
SAPLING_API size_t dtype_size(DType dtype);

// One tensor's entry in a safetensors header. Offsets are relative to the
// start of the data area (just after the header), as in the format.
struct TensorEntry {
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, TensorEntry> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" table
  uint64_t data_offset = 0;                     // 8 + header length
};

// Parses and validates a whole safetensors file image (no torch involved, so it
// can be fuzzed): header length inside the file, valid JSON, known dtypes,
// non-negative shapes, byte count == shape x dtype size, offsets inside the
// data area and no two tensors overlapping. `name` is used in error messages.
SAPLING_API SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                                       const std::string& name);

// A memory-mapped safetensors file. Tensors returned by get() are zero-copy
// views that keep the mapping alive (or copies, when the data is misaligned).
class SAPLING_API SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool contains(const std::string& name) const;
  std::vector<std::string> keys() const;
  torch::Tensor get(const std::string& name) const;

 private:
  struct Mapping;
  std::filesystem::path path_;
  std::shared_ptr<Mapping> mapping_;
  SafetensorsHeader header_;
};

// A checkpoint folder in HF layout: `model.safetensors`, or
// `model.safetensors.index.json` naming shards. Also accepts a path to one
// .safetensors file.
class SAPLING_API TensorStore {
 public:
  explicit TensorStore(const std::filesystem::path& path);
  std::vector<std::string> keys() const;
  bool contains(const std::string& name) const;
  const TensorEntry& entry(const std::string& name) const;
  torch::Tensor get(const std::string& name) const;
  const std::filesystem::path& path() const { return path_; }
  std::map<std::string, std::string> metadata() const;  // merged over shards

 private:
  std::filesystem::path path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index in files_
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes tensors (any device; made contiguous on CPU) to `path` atomically:
// a temporary file in the same folder, fsync, rename. Keys are written in
// sorted order; `metadata` becomes the `__metadata__` table.
SAPLING_API void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

SAPLING_API DType to_dtype(torch::ScalarType type);
SAPLING_API torch::ScalarType to_scalar_type(DType dtype);

}  // namespace sapling
