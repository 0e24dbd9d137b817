// Minimal leveled logging to stderr, shared by the core and the plugins.
#pragma once
#include <sstream>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Quiet = 3 };

SAPLING_API void set_log_level(LogLevel level);
SAPLING_API LogLevel log_level();
SAPLING_API void log_message(LogLevel level, const std::string& text);

template <typename... Args>
void warn(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  log_message(LogLevel::Warning, os.str());
}

template <typename... Args>
void info(Args&&... args) {
  if (log_level() > LogLevel::Info) return;
  std::ostringstream os;
  (os << ... << args);
  log_message(LogLevel::Info, os.str());
}

}  // namespace sapling
