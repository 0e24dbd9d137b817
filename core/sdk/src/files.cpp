// File helpers: whole-file and gzip reads, atomic writes with fsync, early writability checks.
#include "sapling/files.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "sapling/error.hpp"

namespace sapling {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open for reading: ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path.string(), ": read error");
  return ss.str();
}

std::string read_maybe_gzipped(const std::filesystem::path& path) {
  std::string raw = read_file(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) fail(path.string(), ": zlib initialisation failed");
  std::string out;
  char buffer[1 << 16];
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  int rc = Z_OK;
  // Concatenated gzip members are legal; keep inflating until input ends.
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);
      continue;
    }
    if (rc != Z_OK) {
      const uLong at = zs.total_in;
      inflateEnd(&zs);
      if (rc == Z_BUF_ERROR) fail(path.string(), ": truncated gzip data (input ended at byte ", at, ")");
      fail(path.string(), ": corrupt gzip data near byte ", at, " (zlib error ", rc, ")");
    }
    if (out.size() > (size_t(8) << 30)) {
      inflateEnd(&zs);
      fail(path.string(), ": decompresses to more than 8 GiB; refusing");
    }
  }
  inflateEnd(&zs);
  return out;
}

namespace {

// Writes all of `contents` to `fd` (retrying short writes and EINTR); 0, or the errno of the failing write,
// with `written` the bytes that made it.
int write_fully(int fd, const std::string& contents, size_t& written) {
  written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    written += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, const std::string& contents) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::random_device rd;
  const auto tmp = dir / ("." + path.filename().string() + ".tmp" + std::to_string(rd()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path.string(), ": cannot write (", std::strerror(errno), ")");
  size_t written = 0;
  if (const int err = write_fully(fd, contents, written)) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(path.string(), ": write failed after ", written, " bytes (", std::strerror(err), ")");
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path.string(), ": flushing to disk failed (", std::strerror(err), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path.string(), ": rename from temporary file failed (", std::strerror(err), ")");
  }
}

void ensure_writable_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir.string(), ": cannot create output folder (", ec.message(), ")");
  const auto probe = dir / ".sapling-write-test";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(dir.string(), ": output folder is not writable (", std::strerror(errno), ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

void append_file_synced(const std::filesystem::path& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fail(path.string(), ": cannot append (", std::strerror(errno), ")");
  size_t written = 0;
  if (const int err = write_fully(fd, contents, written)) {
    ::close(fd);
    fail(path.string(), ": append failed after ", written, " bytes (", std::strerror(err), ")");
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail(path.string(), ": flushing to disk failed (", std::strerror(errno), ")");
}

}  // namespace sapling
