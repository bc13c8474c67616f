#include "comm/tcp_rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "comm/socket_io.h"
#include "core/logging.h"
#include "core/status.h"

namespace tandem::comm {
namespace {

using internal::ReadAll;
using internal::WriteAll;

constexpr uint8_t kOpSet = 1;
constexpr uint8_t kOpGet = 2;
constexpr uint8_t kCodeOk = 0;
constexpr uint8_t kCodeTimeout = 1;
constexpr uint8_t kCodeBadRequest = 2;

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

absl::StatusOr<uint32_t> ReadU32(int fd, absl::Time deadline) {
  unsigned char buf[4];
  RETURN_IF_ERROR(ReadAll(fd, buf, 4, deadline));
  return GetU32(buf);
}

std::string Response(uint8_t code, absl::string_view value) {
  std::string out(1, static_cast<char>(code));
  PutU32(&out, static_cast<uint32_t>(value.size()));
  out.append(value.data(), value.size());
  return out;
}

absl::Status CheckKeyValue(absl::string_view key, size_t value_size) {
  if (key.empty() || key.size() > kMaxStoreKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous key of ", key.size(), " bytes: must be 1..", kMaxStoreKeyBytes));
  }
  if (value_size > kMaxStoreValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("rendezvous value for key '", key, "' of ",
                                                   value_size, " bytes exceeds ",
                                                   kMaxStoreValueBytes));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- RendezvousServer ----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RendezvousServer>> RendezvousServer::Start(absl::string_view host,
                                                                          int port) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("rendezvous port ", port, ": not in 0..65535"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string host_str(host);
  const std::string port_str = absl::StrCat(port);
  if (int rv = getaddrinfo(host_str.c_str(), port_str.c_str(), &hints, &res); rv != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous host '", host, "': ", gai_strerror(rv)));
  }
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0) {
    freeaddrinfo(res);
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    const int err = errno;
    freeaddrinfo(res);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("rendezvous server on ", host, ":", port, ": ", strerror(err)));
  }
  freeaddrinfo(res);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int bound_port =
      ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                       : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  std::unique_ptr<RendezvousServer> server(new RendezvousServer(std::string(host), fd, bound_port));
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

RendezvousServer::RendezvousServer(std::string host, int listen_fd, int port)
    : host_(std::move(host)), listen_fd_(listen_fd), port_(port) {}

RendezvousServer::~RendezvousServer() {
  Stop();
  close(listen_fd_);
}

std::string RendezvousServer::address() const {
  if (host_.find(':') != std::string::npos) return absl::StrCat("[", host_, "]:", port_);
  return absl::StrCat(host_, ":", port_);
}

void RendezvousServer::Stop() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : conn_fds_) shutdown(fd, SHUT_RDWR);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    absl::MutexLock lock(&mu_);
    threads.swap(conn_threads_);
  }
  for (std::thread& t : threads) t.join();
}

void RendezvousServer::AcceptLoop() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      if (fd >= 0) close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      TANDEM_LOG(ERROR) << "rendezvous server " << address() << ": accept: " << strerror(errno);
      return;
    }
    conn_fds_.push_back(fd);
    conn_threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void RendezvousServer::Serve(int fd) {
  const absl::Time forever = absl::InfiniteFuture();
  for (;;) {
    uint8_t op = 0;
    if (!ReadAll(fd, &op, 1, forever).ok()) break;
    absl::StatusOr<uint32_t> key_len = ReadU32(fd, forever);
    if (!key_len.ok()) break;
    std::string key;
    std::string value;
    if (*key_len == 0 || *key_len > kMaxStoreKeyBytes || (op != kOpSet && op != kOpGet)) {
      const std::string r = Response(kCodeBadRequest, "bad op or key length");
      (void)WriteAll(fd, r.data(), r.size(), absl::Now() + absl::Seconds(1));
      break;
    }
    key.resize(*key_len);
    if (!ReadAll(fd, key.data(), key.size(), forever).ok()) break;
    absl::StatusOr<uint32_t> value_len = ReadU32(fd, forever);
    if (!value_len.ok()) break;
    if (*value_len > kMaxStoreValueBytes) {
      const std::string r = Response(kCodeBadRequest, "value too large");
      (void)WriteAll(fd, r.data(), r.size(), absl::Now() + absl::Seconds(1));
      break;
    }
    value.resize(*value_len);
    if (!ReadAll(fd, value.data(), value.size(), forever).ok()) break;
    absl::StatusOr<uint32_t> timeout_ms = ReadU32(fd, forever);
    if (!timeout_ms.ok()) break;

    std::string response;
    if (op == kOpSet) {
      absl::MutexLock lock(&mu_);
      values_[key] = std::move(value);
      response = Response(kCodeOk, "");
    } else {
      absl::MutexLock lock(&mu_);
      const absl::Time deadline = absl::Now() + absl::Milliseconds(*timeout_ms);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || values_.count(key) > 0;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
      if (stopping_) break;
      auto it = values_.find(key);
      response = it == values_.end() ? Response(kCodeTimeout, "") : Response(kCodeOk, it->second);
    }
    if (!WriteAll(fd, response.data(), response.size(), forever).ok()) break;
  }
  absl::MutexLock lock(&mu_);
  close(fd);
  std::erase(conn_fds_, fd);
}

// ---- TcpStoreClient ------------------------------------------------------------------------

TcpStoreClient::TcpStoreClient(std::string address, absl::Duration connect_timeout)
    : address_(std::move(address)), connect_timeout_(connect_timeout) {}

TcpStoreClient::~TcpStoreClient() {
  absl::MutexLock lock(&mu_);
  Disconnect();
}

void TcpStoreClient::Disconnect() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::Status TcpStoreClient::EnsureConnected(absl::Time deadline) {
  if (fd_ >= 0) return absl::OkStatus();
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(internal::ParseHostPort(address_, &host, &port));
  ASSIGN_OR_RETURN(
      fd_, internal::ConnectTcp(host, port, std::min(deadline, absl::Now() + connect_timeout_)));
  return absl::OkStatus();
}

absl::StatusOr<std::pair<uint8_t, std::string>> TcpStoreClient::RoundTrip(
    const std::string& request, absl::Time deadline) {
  RETURN_IF_ERROR(EnsureConnected(deadline));
  absl::Status s = WriteAll(fd_, request.data(), request.size(), deadline);
  uint8_t code = 0;
  std::string value;
  if (s.ok()) s = ReadAll(fd_, &code, 1, deadline);
  absl::StatusOr<uint32_t> len = s.ok() ? ReadU32(fd_, deadline) : s;
  if (len.ok() && *len > kMaxStoreValueBytes) {
    len = absl::UnavailableError(absl::StrCat("oversized response of ", *len, " bytes"));
  }
  if (len.ok()) {
    value.resize(*len);
    s = ReadAll(fd_, value.data(), value.size(), deadline);
  } else {
    s = len.status();
  }
  if (!s.ok()) {
    // The connection is in an unknown state: start afresh next time.
    Disconnect();
    return core::Annotate(s, absl::StrCat("rendezvous store ", address_));
  }
  if (code == kCodeBadRequest) {
    Disconnect();
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous store ", address_, " rejected the request: ", value));
  }
  return std::make_pair(code, std::move(value));
}

absl::Status TcpStoreClient::Set(absl::string_view key, absl::string_view value) {
  RETURN_IF_ERROR(CheckKeyValue(key, value.size()));
  std::string request(1, static_cast<char>(kOpSet));
  PutU32(&request, static_cast<uint32_t>(key.size()));
  request.append(key.data(), key.size());
  PutU32(&request, static_cast<uint32_t>(value.size()));
  request.append(value.data(), value.size());
  PutU32(&request, 0);
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto response, RoundTrip(request, absl::Now() + connect_timeout_));
  (void)response;
  return absl::OkStatus();
}

absl::StatusOr<std::string> TcpStoreClient::Get(absl::string_view key, absl::Duration timeout) {
  RETURN_IF_ERROR(CheckKeyValue(key, 0));
  timeout = std::clamp(timeout, absl::ZeroDuration(), absl::Hours(24));
  std::string request(1, static_cast<char>(kOpGet));
  PutU32(&request, static_cast<uint32_t>(key.size()));
  request.append(key.data(), key.size());
  PutU32(&request, 0);
  PutU32(&request, static_cast<uint32_t>(absl::ToInt64Milliseconds(timeout)));
  absl::MutexLock lock(&mu_);
  // The server answers by itself when the timeout expires; allow it some slack to do so.
  ASSIGN_OR_RETURN(auto response, RoundTrip(request, absl::Now() + timeout + absl::Seconds(2)));
  if (response.first != kCodeOk) {
    return absl::DeadlineExceededError(absl::StrCat("rendezvous store ", address_, ": key '", key,
                                                    "' not set within ",
                                                    absl::FormatDuration(timeout)));
  }
  return std::move(response.second);
}

}  // namespace tandem::comm
