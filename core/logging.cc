#include "core/logging.h"

#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tandem::core {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("TANDEM_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string v = absl::AsciiStrToLower(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warning" || v == "warn") return LogLevel::kWarning;
  if (v == "error") return LogLevel::kError;
  if (v == "fatal") return LogLevel::kFatal;
  return LogLevel::kInfo;
}

LogFormat FormatFromEnv() {
  const char* env = std::getenv("TANDEM_LOG_FORMAT");
  LogFormat f = LogFormat::kText;
  if (env != nullptr) ParseLogFormat(env, &f);
  return f;
}

std::atomic<int>& MinLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

std::atomic<int>& Format() {
  static std::atomic<int> format{static_cast<int>(FormatFromEnv())};
  return format;
}

std::mutex& Mu() {
  static std::mutex mu;
  return mu;
}

struct Identity {
  std::string component;
  int rank = -1;
  std::string group;
};

Identity& Ident() {
  static Identity* id = [] {
    auto* i = new Identity();
    if (const char* g = std::getenv("TANDEM_LOG_GROUP")) i->group = g;
    return i;
  }();
  return *id;
}

const char* LevelChar(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
    case LogLevel::kFatal:
      return "F";
  }
  return "?";
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kFatal:
      return "fatal";
  }
  return "?";
}

const char* Basename(const char* file) {
  const char* base = file;
  for (const char* p = file; *p; ++p) {
    if (*p == '/') base = p + 1;
  }
  return base;
}

// "2026-12-07T17:58:17.123456Z"
std::string UtcTimestamp() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<long>(tv.tv_usec));
  return buf;
}

// Values with spaces, quotes or '=' are quoted in text lines, so the pairs stay parseable.
std::string TextValue(const std::string& v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      plain = false;
    }
  }
  return plain ? v : absl::StrCat("\"", JsonEscape(v), "\"");
}

void WriteLine(LogLevel level, const char* file, int line, std::string_view message,
               const std::vector<LogField>& fields) {
  const std::string ts = UtcTimestamp();
  std::string out;
  std::lock_guard<std::mutex> lock(Mu());
  const Identity& id = Ident();
  if (static_cast<LogFormat>(Format().load()) == LogFormat::kJson) {
    out = absl::StrCat("{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level), "\"");
    if (!id.component.empty())
      absl::StrAppend(&out, ",\"component\":\"", JsonEscape(id.component), "\"");
    if (id.rank >= 0) absl::StrAppend(&out, ",\"rank\":", id.rank);
    if (!id.group.empty()) absl::StrAppend(&out, ",\"group\":\"", JsonEscape(id.group), "\"");
    absl::StrAppend(&out, ",\"src\":\"", JsonEscape(Basename(file)), ":", line, "\",\"msg\":\"",
                    JsonEscape(message), "\"");
    for (const LogField& f : fields) {
      absl::StrAppend(&out, ",\"", JsonEscape(f.key), "\":");
      if (f.quoted) {
        absl::StrAppend(&out, "\"", JsonEscape(f.value), "\"");
      } else {
        absl::StrAppend(&out, f.value);
      }
    }
    out += "}\n";
  } else {
    out = absl::StrCat(ts, " ", LevelChar(level));
    if (!id.component.empty()) absl::StrAppend(&out, " ", id.component);
    if (id.rank >= 0) absl::StrAppend(&out, " rank=", id.rank);
    if (!id.group.empty()) absl::StrAppend(&out, " group=", id.group);
    absl::StrAppend(&out, " ", Basename(file), ":", line, "] ",
                    absl::string_view(message.data(), message.size()));
    for (const LogField& f : fields) absl::StrAppend(&out, " ", f.key, "=", TextValue(f.value));
    out += "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }
LogLevel MinLogLevel() { return static_cast<LogLevel>(MinLevel().load()); }

void SetLogContext(std::string context) {
  std::lock_guard<std::mutex> lock(Mu());
  Ident().component = std::move(context);
}

void SetLogRank(int rank) {
  std::lock_guard<std::mutex> lock(Mu());
  Ident().rank = rank;
}

void SetLogGroup(std::string group) {
  std::lock_guard<std::mutex> lock(Mu());
  Ident().group = std::move(group);
}

void SetLogFormat(LogFormat format) { Format().store(static_cast<int>(format)); }
LogFormat GetLogFormat() { return static_cast<LogFormat>(Format().load()); }

bool ParseLogFormat(std::string_view text, LogFormat* format) {
  if (text == "text") {
    *format = LogFormat::kText;
    return true;
  }
  if (text == "json") {
    *format = LogFormat::kJson;
    return true;
  }
  return false;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void LogEvent(LogLevel level, const char* file, int line, std::string_view message,
              const std::vector<LogField>& fields) {
  if (level < MinLogLevel()) return;
  WriteLine(level, file, line, message, fields);
}

LogMessage::LogMessage(LogLevel level, const char* file, int line)
    : level_(level), file_(file), line_(line) {}

LogMessage::~LogMessage() {
  WriteLine(level_, file_, line_, stream_.str(), {});
  if (level_ == LogLevel::kFatal) std::abort();
}

}  // namespace tandem::core
