#include "comm/socket_io.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::comm::internal {
namespace {

// Waits for `events` on fd until deadline. OK when ready.
absl::Status PollUntil(int fd, short events, absl::Time deadline) {
  for (;;) {
    int timeout_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(absl::StrCat("socket fd ", fd, ": timed out"));
      }
      timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    }
    pollfd p{fd, events, 0};
    const int rv = poll(&p, 1, timeout_ms);
    if (rv < 0 && errno == EINTR) continue;
    if (rv < 0) return absl::UnavailableError(absl::StrCat("poll: ", strerror(errno)));
    if (rv > 0) return absl::OkStatus();
  }
}

}  // namespace

absl::Status WriteAll(int fd, const void* data, size_t n, absl::Time deadline) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (absl::Status s = PollUntil(fd, POLLOUT, deadline); !s.ok()) return s;
    const ssize_t rv = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (rv < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    }
    p += rv;
    n -= static_cast<size_t>(rv);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, void* data, size_t n, absl::Time deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    if (absl::Status s = PollUntil(fd, POLLIN, deadline); !s.ok()) return s;
    const ssize_t rv = recv(fd, p, n, MSG_DONTWAIT);
    if (rv == 0) return absl::UnavailableError("connection closed by peer");
    if (rv < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
    }
    p += rv;
    n -= static_cast<size_t>(rv);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ConnectTcp(absl::string_view host, int port, absl::Time deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string host_str(host);
  const std::string port_str = absl::StrCat(port);
  if (int rv = getaddrinfo(host_str.c_str(), port_str.c_str(), &hints, &res); rv != 0) {
    return absl::UnavailableError(
        absl::StrCat("resolve ", host, ":", port, ": ", gai_strerror(rv)));
  }
  std::string last_error = "no address";
  for (;;) {
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        last_error = strerror(errno);
        continue;
      }
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      int rv = connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (rv < 0 && errno == EINPROGRESS) {
        if (absl::Status s = PollUntil(fd, POLLOUT, deadline); s.ok()) {
          int err = 0;
          socklen_t len = sizeof(err);
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          rv = err == 0 ? 0 : -1;
          errno = err;
        } else {
          errno = ETIMEDOUT;
        }
      }
      if (rv == 0) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(res);
        return fd;
      }
      last_error = strerror(errno);
      close(fd);
    }
    if (absl::Now() + absl::Milliseconds(50) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  freeaddrinfo(res);
  return absl::UnavailableError(absl::StrCat("connect to ", host, ":", port, ": ", last_error));
}

absl::Status ParseHostPort(absl::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "': expected host:port"));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p <= 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "': port must be in 1..65535"));
  }
  *host = std::string(h);
  *port = p;
  return absl::OkStatus();
}

}  // namespace tandem::comm::internal
