// Reading the 3Di encoder (kerasify dense layers) and the 20 centroids, with byte/line-exact errors.
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "three_di.hpp"

namespace sapling::foldseek3di {
namespace {

// Sequential little-endian reader that names the file and offset on failure.
class ByteReader {
 public:
  ByteReader(const std::string& bytes, std::string file) : bytes_(bytes), file_(std::move(file)) {}

  uint32_t u32(const char* what) {
    need(4, what);
    uint32_t v = 0;
    for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(bytes_[pos_ + k]);
    pos_ += 4;
    return v;
  }

  std::vector<float> floats(uint64_t count, const char* what) {
    need(count * 4, what);
    std::vector<float> out(count);
    for (uint64_t k = 0; k < count; ++k) {
      uint32_t bits = 0;
      for (int b = 3; b >= 0; --b) bits = (bits << 8) | static_cast<unsigned char>(bytes_[pos_ + 4 * k + b]);
      std::memcpy(&out[k], &bits, 4);
      if (!std::isfinite(out[k])) fail(file_, ": byte ", pos_ + 4 * k, ": ", what, " value ", k, " is not finite");
    }
    pos_ += count * 4;
    return out;
  }

  [[noreturn]] void error(uint64_t at, const std::string& message) const {
    fail(file_, ": byte ", at, ": ", message);
  }

  uint64_t offset() const { return pos_; }
  uint64_t size() const { return bytes_.size(); }

 private:
  void need(uint64_t n, const char* what) const {
    if (pos_ + n > bytes_.size())
      fail(file_, ": byte ", pos_, ": expected ", what, " (", n, " bytes) but the file ends at byte ", bytes_.size(),
           " (truncated kerasify file?)");
  }

  const std::string& bytes_;
  std::string file_;
  uint64_t pos_ = 0;
};

constexpr uint32_t kKerasDense = 1;
constexpr uint32_t kKerasLinear = 1;
constexpr uint32_t kKerasRelu = 2;
constexpr uint32_t kMaxWidth = 1 << 16;  // far above any real encoder; guards against garbage sizes

}  // namespace

DenseNetwork DenseNetwork::load(const std::filesystem::path& path) {
  const std::string bytes = read_file(path);
  const std::string name = path.string();
  ByteReader in(bytes, name);
  DenseNetwork net;
  const uint64_t count_at = in.offset();
  const uint32_t count = in.u32("layer count (u32)");
  if (count == 0 || count > 64) in.error(count_at, "layer count " + std::to_string(count) + " is not in 1..64");
  for (uint32_t l = 0; l < count; ++l) {
    const std::string tag = "layer " + std::to_string(l) + ": ";
    const uint64_t type_at = in.offset();
    const uint32_t type = in.u32("layer type (u32)");
    if (type != kKerasDense)
      in.error(type_at, tag + "layer type " + std::to_string(type) + " is not supported (only 1 = dense)");
    Layer layer;
    const uint64_t shape_at = in.offset();
    const uint32_t rows = in.u32("weight rows (u32)");
    const uint32_t cols = in.u32("weight columns (u32)");
    const uint32_t bias_len = in.u32("bias length (u32)");
    if (rows == 0 || cols == 0 || rows > kMaxWidth || cols > kMaxWidth)
      in.error(shape_at, tag + "weight shape " + std::to_string(rows) + "x" + std::to_string(cols) + " is not valid");
    if (bias_len != cols)
      in.error(shape_at + 8, tag + "bias length " + std::to_string(bias_len) + " differs from the " +
                                 std::to_string(cols) + " weight columns");
    if (!net.layers_.empty() && net.layers_.back().outputs != rows)
      in.error(shape_at, tag + "takes " + std::to_string(rows) + " inputs but the previous layer has " +
                             std::to_string(net.layers_.back().outputs) + " outputs");
    layer.inputs = rows;
    layer.outputs = cols;
    layer.weights = in.floats(uint64_t(rows) * cols, "weights (float32)");
    layer.bias = in.floats(bias_len, "bias (float32)");
    const uint64_t act_at = in.offset();
    const uint32_t activation = in.u32("activation (u32)");
    if (activation != kKerasLinear && activation != kKerasRelu)
      in.error(act_at, tag + "activation " + std::to_string(activation) + " is not supported (1 = linear, 2 = relu)");
    layer.relu = activation == kKerasRelu;
    net.layers_.push_back(std::move(layer));
  }
  if (in.offset() != in.size())
    in.error(in.offset(), std::to_string(in.size() - in.offset()) + " unexpected bytes after the last layer");
  return net;
}

std::vector<float> DenseNetwork::apply(const std::vector<float>& in) const {
  std::vector<float> x = in, y;
  for (const Layer& layer : layers_) {
    // Same order as kerasify (and so Foldseek): accumulate input by input
    // from zero, add the bias last, all in float32.
    y.assign(layer.outputs, 0.0f);
    for (int64_t i = 0; i < layer.inputs; ++i) {
      const float xi = x[i];
      const float* row = layer.weights.data() + i * layer.outputs;
      for (int64_t j = 0; j < layer.outputs; ++j) {
        const float product = xi * row[j];
        y[j] = y[j] + product;
      }
    }
    for (int64_t j = 0; j < layer.outputs; ++j) {
      y[j] = y[j] + layer.bias[j];
      if (layer.relu && y[j] < 0.0f) y[j] = 0.0f;
    }
    x.swap(y);
  }
  return x;
}

Centroids load_centroids(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  std::istringstream lines(text);
  std::string line;
  Centroids centroids{};
  int line_no = 0, rows = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    std::istringstream fields(line);
    long state = -1;
    std::string letter, extra;
    double x = NAN, y = NAN;
    if (!(fields >> state >> letter >> x >> y) || (fields >> extra))
      fail(path.string(), ":", line_no, ": expected 'state letter x y' (4 columns), got '", line, "'");
    if (state != rows)
      fail(path.string(), ":", line_no, ": expected state ", rows, " (states in order 0..19), got ", state);
    if (rows >= kNumStates) fail(path.string(), ":", line_no, ": more than ", kNumStates, " centroids");
    if (letter.size() != 1 || letter[0] != kAlphabet[rows])
      fail(path.string(), ":", line_no, ": state ", rows, " must have letter '", kAlphabet[rows], "', got '", letter,
           "'");
    if (!std::isfinite(x) || !std::isfinite(y)) fail(path.string(), ":", line_no, ": centroid is not finite");
    centroids[rows] = {x, y};
    ++rows;
  }
  if (rows != kNumStates) fail(path.string(), ": expected ", kNumStates, " centroids, found ", rows);
  return centroids;
}

}  // namespace sapling::foldseek3di
