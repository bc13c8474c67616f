// Status helpers for Tandem.
//
// Fallible functions return absl::Status / absl::StatusOr<T>. Abseil 20220623 has no
// RETURN_IF_ERROR / ASSIGN_OR_RETURN, so these macros keep the names and meaning of the
// later Abseil/Google ones: an Abseil upgrade is a rename. Thread-safe (stateless).
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define TANDEM_STATUS_CONCAT_INNER_(a, b) a##b
#define TANDEM_STATUS_CONCAT_(a, b) TANDEM_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): evaluates expr (a Status or StatusOr) and returns its status if not ok.
#define RETURN_IF_ERROR(expr)                                                   \
  do {                                                                          \
    auto&& tandem_status_ = (expr);                                             \
    if (!tandem_status_.ok()) return ::tandem::core::internal::ToStatus(        \
        std::forward<decltype(tandem_status_)>(tandem_status_));                \
  } while (false)

// ASSIGN_OR_RETURN(lhs, expr): lhs = std::move(expr).value(), or returns the error.
// lhs may be a declaration: ASSIGN_OR_RETURN(auto file, OpenFile(path));
#define ASSIGN_OR_RETURN(lhs, expr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL_(TANDEM_STATUS_CONCAT_(tandem_statusor_, __LINE__), lhs, expr)

#define TANDEM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace tandem::core {
namespace internal {
inline absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

// Returns `status` with `context` prefixed to its message ("context: message"); ok stays ok.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace tandem::core
