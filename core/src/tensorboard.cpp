// TensorBoard event files: TFRecord framing (Boost.CRC's CRC-32C) around hand-encoded Event protocol buffers.
#include "sapling/internal/tensorboard.hpp"

#include <unistd.h>

#include <boost/crc.hpp>
#include <chrono>
#include <cstring>

#include "sapling/error.hpp"

namespace sapling {

namespace {

// The few protocol-buffer encodings an Event with scalar summaries needs (tensorflow/core/util/event.proto,
// tensorflow/core/framework/summary.proto): field numbers and wire types are spelled out where used.
void pb_put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}
template <typename T>
void pb_put_fixed(std::string& out, T value) {  // little-endian, as x86 and the format
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}
void pb_put_tag(std::string& out, int field, int wire_type) { pb_put_varint(out, (static_cast<uint64_t>(field) << 3) | wire_type); }
void pb_put_bytes(std::string& out, int field, const std::string& bytes) {
  pb_put_tag(out, field, 2);
  pb_put_varint(out, bytes.size());
  out += bytes;
}

// Event { double wall_time = 1; int64 step = 2; oneof { string file_version = 3; Summary summary = 5;
//         SessionLog session_log = 6; } }
std::string event_header(int64_t step) {
  std::string out;
  pb_put_tag(out, 1, 1);
  pb_put_fixed(out, std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  pb_put_tag(out, 2, 0);
  pb_put_varint(out, static_cast<uint64_t>(step));
  return out;
}

// TFRecord's checksum: CRC-32C (Castagnoli), rotated and offset so that a CRC of CRCs is not a CRC.
uint32_t tfrecord_masked_crc32c(const char* data, size_t size) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  const uint32_t value = crc.checksum();
  return ((value >> 15) | (value << 17)) + 0xa282ead8u;
}

std::string tensorboard_host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
  path_ = dir / ("events.out.tfevents." + std::to_string(seconds) + "." + tensorboard_host_name() + "." +
                 std::to_string(::getpid()) + ".sapling");
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail(path_.string(), ": cannot open for writing");
  std::string first = event_header(0);
  pb_put_bytes(first, 3, "brain.Event:2");  // the version TensorBoard expects first
  write_event(first);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  std::string scalar;  // Summary.Value { string tag = 1; float simple_value = 2; }
  pb_put_bytes(scalar, 1, tag);
  pb_put_tag(scalar, 2, 5);
  pb_put_fixed(scalar, static_cast<float>(value));
  std::string summary;  // Summary { repeated Value value = 1; }
  pb_put_bytes(summary, 1, scalar);
  std::string out = event_header(step);
  pb_put_bytes(out, 5, summary);
  write_event(out);
}

void TensorBoardWriter::restart_at(int64_t step) {
  std::string session_log;  // SessionLog { SessionStatus status = 1; }, START = 1
  pb_put_tag(session_log, 1, 0);
  pb_put_varint(session_log, 1);
  std::string out = event_header(step);
  pb_put_bytes(out, 6, session_log);
  write_event(out);
}

void TensorBoardWriter::write_event(const std::string& event) {
  std::string length;
  pb_put_fixed(length, static_cast<uint64_t>(event.size()));
  out_.write(length.data(), static_cast<std::streamsize>(length.size()));
  const uint32_t length_crc = tfrecord_masked_crc32c(length.data(), length.size());
  out_.write(reinterpret_cast<const char*>(&length_crc), sizeof(length_crc));
  out_.write(event.data(), static_cast<std::streamsize>(event.size()));
  const uint32_t data_crc = tfrecord_masked_crc32c(event.data(), event.size());
  out_.write(reinterpret_cast<const char*>(&data_crc), sizeof(data_crc));
  out_.flush();
  if (!out_) fail(path_.string(), ": write failed (disk full?)");
}

}  // namespace sapling
