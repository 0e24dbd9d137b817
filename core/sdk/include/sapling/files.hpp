// Small file helpers: whole-file reads, atomic writes, writability checks.
#pragma once
#include <filesystem>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

// Reads a whole file; throws sapling::Error naming the file on failure.
SAPLING_API std::string read_file(const std::filesystem::path& path);

// Reads a file that may be gzip-compressed (detected by magic bytes).
SAPLING_API std::string read_maybe_gzipped(const std::filesystem::path& path);

// Writes `contents` to a temporary file next to `path`, fsyncs it and renames
// it over `path`, so a crash leaves either the old file or the new one.
SAPLING_API void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

// Appends `contents` to `path` (created if absent) and fsyncs it: a journal
// line survives a crash that follows the call.
SAPLING_API void append_file_synced(const std::filesystem::path& path, const std::string& contents);

// Fails early (before hours of work) when `dir` cannot be created or written.
SAPLING_API void ensure_writable_dir(const std::filesystem::path& dir);

}  // namespace sapling
