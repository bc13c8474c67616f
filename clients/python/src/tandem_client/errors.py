"""Exceptions carrying the gRPC status code and the server's message."""

import grpc


class TandemError(Exception):
    """A failed Tandem call: `code` is the grpc.StatusCode, `message` the server's details."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgument(TandemError):
    """A request field is invalid; the message names the field and its value."""


class Unauthenticated(TandemError):
    """No or an unknown API key."""


class PermissionDenied(TandemError):
    """The key may not do this (for example priority > 0 without allow_priority)."""


class ResourceExhausted(TandemError):
    """The server's admission queue is full, or the request is larger than it accepts."""


class Unavailable(TandemError):
    """The server cannot be reached, or no replica is ready, or a worker died."""


class DeadlineExceeded(TandemError):
    """The deadline (timeout=) or the request's time_limit_ms passed."""


class Cancelled(TandemError):
    """The call was cancelled (by this client, or by Abort)."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def from_rpc_error(err):
    """The TandemError subclass for a grpc.RpcError (sync or aio)."""
    code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
    details = err.details() if callable(getattr(err, "details", None)) else str(err)
    return _BY_CODE.get(code, TandemError)(code, details or "")
