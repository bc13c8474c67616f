#include "comm/gloo_errors.h"

#include <string>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gloo/common/logging.h"

namespace tandem::comm::internal {

absl::Status GlooExceptionToStatus(std::exception_ptr error, absl::string_view what) {
  try {
    std::rethrow_exception(error);
  } catch (const StoreException& e) {
    return absl::Status(e.status().code(), absl::StrCat(what, ": ", e.status().message()));
  } catch (const gloo::IoException& e) {
    const absl::string_view msg = e.what();
    const bool timeout = absl::StrContains(msg, "Timed out") || absl::StrContains(msg, "timeout") ||
                         absl::StrContains(msg, "Timeout");
    // Gloo reports a peer's failure to the pending operations of every pair as "Application
    // timeout caused pair closure" when one of them timed out: still a timeout.
    if (timeout) return absl::DeadlineExceededError(absl::StrCat(what, ": ", msg));
    return absl::UnavailableError(absl::StrCat(what, ": ", msg));
  } catch (const gloo::InvalidOperationException& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what()));
  } catch (const gloo::EnforceNotMet& e) {
    return absl::InternalError(absl::StrCat(what, ": gloo invariant: ", e.what()));
  } catch (const std::system_error& e) {
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, ": unknown exception"));
  }
}

}  // namespace tandem::comm::internal
