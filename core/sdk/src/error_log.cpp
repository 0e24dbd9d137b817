// Definitions for error.hpp and log.hpp (kept out of line so one copy exists).
#include <atomic>
#include <cstdio>
#include <mutex>

#include "sapling/error.hpp"
#include "sapling/log.hpp"

namespace sapling {

Error::Error(const std::string& message) : std::runtime_error(message) {}
Error::~Error() = default;

void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const std::exception& e) {
    throw Error(context + ": " + e.what());
  }
}

namespace {
std::atomic<LogLevel> g_level{LogLevel::Info};
std::mutex g_log_mutex;
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_message(LogLevel level, const std::string& text) {
  if (level < g_level.load()) return;
  std::lock_guard<std::mutex> lock(g_log_mutex);
  const char* prefix = level == LogLevel::Warning ? "warning: " : "";
  std::fprintf(stderr, "%s%s\n", prefix, text.c_str());
}

}  // namespace sapling
