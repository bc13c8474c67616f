// Logging and CHECK for Tandem.
//
// One small facility (Abseil 20220623 has no absl/log): TANDEM_LOG(INFO) << "...";
// Levels DEBUG < INFO < WARNING < ERROR < FATAL; the minimum level comes from the environment
// variable TANDEM_LOG_LEVEL (default INFO) or SetMinLogLevel(). Each line carries a timestamp,
// the level, the process context (e.g. "worker s1r0", set once with SetLogContext) and file:line.
// Lines are written to stderr whole, under a mutex: thread-safe.
// CHECK(cond) is for programmer errors only, never for input, config or network data.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace tandem::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();
// A short tag printed on every line of this process, e.g. "coordinator" or "worker s0r1".
void SetLogContext(std::string context);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // writes the line; aborts for kFatal
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

// Swallows a stream expression when the level is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace tandem::core

#define TANDEM_LOG_LEVEL_DEBUG ::tandem::core::LogLevel::kDebug
#define TANDEM_LOG_LEVEL_INFO ::tandem::core::LogLevel::kInfo
#define TANDEM_LOG_LEVEL_WARNING ::tandem::core::LogLevel::kWarning
#define TANDEM_LOG_LEVEL_ERROR ::tandem::core::LogLevel::kError
#define TANDEM_LOG_LEVEL_FATAL ::tandem::core::LogLevel::kFatal

#define TANDEM_LOG(level)                                                   \
  (TANDEM_LOG_LEVEL_##level < ::tandem::core::MinLogLevel())                \
      ? (void)0                                                             \
      : ::tandem::core::LogVoidify() &                                      \
            ::tandem::core::LogMessage(TANDEM_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#define TANDEM_CHECK(cond)                                                           \
  (cond) ? (void)0                                                                   \
         : ::tandem::core::LogVoidify() &                                            \
               ::tandem::core::LogMessage(::tandem::core::LogLevel::kFatal, __FILE__, \
                                          __LINE__)                                  \
                       .stream()                                                     \
                   << "CHECK failed: " #cond " "

#define TANDEM_CHECK_EQ(a, b) TANDEM_CHECK((a) == (b)) << "(" << (a) << " vs " << (b) << ") "
#define TANDEM_CHECK_LT(a, b) TANDEM_CHECK((a) < (b)) << "(" << (a) << " vs " << (b) << ") "
#define TANDEM_CHECK_LE(a, b) TANDEM_CHECK((a) <= (b)) << "(" << (a) << " vs " << (b) << ") "
