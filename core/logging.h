// Logging and CHECK for Tandem.
//
// One small facility (Abseil 20220623 has no absl/log): TANDEM_LOG(INFO) << "...";
// Levels DEBUG < INFO < WARNING < ERROR < FATAL; the minimum level comes from the environment
// variable TANDEM_LOG_LEVEL (default INFO) or SetMinLogLevel(). Each line carries a UTC ISO 8601
// timestamp with microseconds, the level, the process identity (component, e.g. "coordinator" or
// "worker": SetLogContext, the rank once known: SetLogRank, the group: SetLogGroup) and file:line:
//   2026-12-07T17:58:17.123456Z I worker rank=1 group=g1 stage_executor.cc:42] message
// The format is text or JSON lines (SetLogFormat; the environment variable TANDEM_LOG_FORMAT=json,
// which child processes inherit), one object per line for log shippers:
//   {"ts":"2026-...Z","level":"info","component":"worker","rank":1,"group":"g1",
//    "src":"stage_executor.cc:42","msg":"message"}
// LogEvent writes one line with extra key/value fields (access logs): "key=value" pairs after the
// message in text, extra members in JSON.
// Lines are written to stderr whole, under a mutex: thread-safe.
// CHECK(cond) is for programmer errors only, never for input, config or network data.
#pragma once

#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();
// A short tag printed on every line of this process, e.g. "coordinator" or "worker" (the
// component; kept for callers that set only that).
void SetLogContext(std::string context);
// The rest of the process identity on every line: the rank (-1: none) and the group (the model
// replica's name, "" for none; it defaults to the environment variable TANDEM_LOG_GROUP, which a
// coordinator sets for the workers it starts).
void SetLogRank(int rank);
void SetLogGroup(std::string group);

enum class LogFormat { kText = 0, kJson = 1 };
void SetLogFormat(LogFormat format);
LogFormat GetLogFormat();
// "text" or "json"; false for anything else.
bool ParseLogFormat(std::string_view text, LogFormat* format);

// One extra field of a structured line. `quoted` false writes the value as a JSON number/bool.
struct LogField {
  std::string key;
  std::string value;
  bool quoted = true;
};
void LogEvent(LogLevel level, const char* file, int line, std::string_view message,
              const std::vector<LogField>& fields);
// JSON string escaping (quotes, backslash, control characters as \u00XX).
std::string JsonEscape(std::string_view text);

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

#define TANDEM_LOG(level)                                    \
  (TANDEM_LOG_LEVEL_##level < ::tandem::core::MinLogLevel()) \
      ? (void)0                                              \
      : ::tandem::core::LogVoidify() &                       \
            ::tandem::core::LogMessage(TANDEM_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#define TANDEM_CHECK(cond)                                                                      \
  (cond) ? (void)0                                                                              \
         : ::tandem::core::LogVoidify() &                                                       \
               ::tandem::core::LogMessage(::tandem::core::LogLevel::kFatal, __FILE__, __LINE__) \
                       .stream()                                                                \
                   << "CHECK failed: " #cond " "

#define TANDEM_CHECK_EQ(a, b) TANDEM_CHECK((a) == (b)) << "(" << (a) << " vs " << (b) << ") "
#define TANDEM_CHECK_LT(a, b) TANDEM_CHECK((a) < (b)) << "(" << (a) << " vs " << (b) << ") "
#define TANDEM_CHECK_LE(a, b) TANDEM_CHECK((a) <= (b)) << "(" << (a) << " vs " << (b) << ") "
