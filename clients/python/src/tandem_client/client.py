"""The synchronous client (grpc) over the generated tandem.v1 stubs."""

import threading
import time

import grpc

from tandem_client import errors
from tandem_client._gen.tandem.v1 import tandem_pb2 as pb
from tandem_client._gen.tandem.v1 import tandem_pb2_grpc as pb_grpc
from tandem_client._retry import NO_RETRY, Deadline, RetryPolicy, should_retry
from tandem_client.results import GenerateResult, StreamDelta, build_request

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def encode_health_request(service):
    # grpc.health.v1.HealthCheckRequest{string service = 1}: encoded by hand (no extra package).
    data = service.encode()
    if not data:
        return b""
    if len(data) > 127:
        raise ValueError("health service name longer than 127 bytes")
    return b"\x0a" + bytes([len(data)]) + data


def decode_health_response(data):
    # HealthCheckResponse{ServingStatus status = 1}: field 1, varint (values < 128).
    if len(data) >= 2 and data[0] == 0x08:
        return HEALTH_STATUS.get(data[1], str(data[1]))
    return "UNKNOWN"


def channel_credentials(tls, root_certificates, private_key, certificate_chain):
    if not (tls or root_certificates or certificate_chain):
        return None
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)


def call_metadata(api_key, metadata):
    md = list(metadata or [])
    if api_key:
        md.append(("authorization", f"Bearer {api_key}"))
    return tuple(md)


class Client:
    """A Tandem client: Client("127.0.0.1:50051", api_key=..., tls=True).

    retry: the RetryPolicy for idempotent calls (tokenize, detokenize, model_info, health, abort).
    retry_generate: also retry generate/stream with it, but only before any token was received
    (a generation is not idempotent in general: the server may have run part of it). Off by default.
    """

    def __init__(self, target, api_key=None, tls=False, root_certificates=None, private_key=None,
                 certificate_chain=None, timeout=None, retry=None, retry_generate=False,
                 metadata=None, options=None, interceptors=None):
        creds = channel_credentials(tls, root_certificates, private_key, certificate_chain)
        opts = list(options or [])
        self._channel = (grpc.secure_channel(target, creds, opts) if creds
                         else grpc.insecure_channel(target, opts))
        if interceptors:
            self._channel = grpc.intercept_channel(self._channel, *interceptors)
        self._stub = pb_grpc.TandemStub(self._channel)
        self._health = self._channel.unary_unary(HEALTH_CHECK, request_serializer=encode_health_request,
                                                 response_deserializer=decode_health_response)
        self._metadata = call_metadata(api_key, metadata)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.retry_generate = retry_generate

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout, retry):
        deadline = Deadline(self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            try:
                return method(request, timeout=deadline.remaining(), metadata=self._metadata)
            except grpc.RpcError as e:
                wait = retry.backoff(attempt)
                if not should_retry(retry, e.code(), attempt, deadline, wait):
                    raise errors.from_rpc_error(e) from None
            time.sleep(wait)
            attempt += 1

    def _gen_retry(self, retry_generate):
        on = self.retry_generate if retry_generate is None else retry_generate
        return self.retry if on else NO_RETRY

    # ---- generation ----

    def generate(self, prompt=None, *, token_ids=None, timeout=None, retry_generate=None, **params):
        """Runs one generation to completion: a GenerateResult. params: temperature, top_k, top_p,
        min_p, repetition_penalty, presence_penalty, frequency_penalty, seed, max_new_tokens
        (max_tokens), min_new_tokens, stop, stop_token_ids, ignore_eos, include_stop_str_in_output,
        logprobs, top_logprobs, priority, request_id, time_limit_ms, skip_text."""
        req = build_request(prompt, token_ids, **params)
        return GenerateResult.from_pb(self._call(self._stub.Generate, req, timeout,
                                                 self._gen_retry(retry_generate)))

    def stream(self, prompt=None, *, token_ids=None, timeout=None, retry_generate=None, **params):
        """A GenerationStream of StreamDelta; closing it (close(), `with`, break out of a for loop
        over it and dropping it) cancels the call on the server."""
        req = build_request(prompt, token_ids, **params)
        return GenerationStream(self, req, Deadline(self.timeout if timeout is None else timeout),
                                self._gen_retry(retry_generate))

    def abort(self, request_ids, *, timeout=None):
        """Ends the named in-flight requests with CANCELLED: (aborted ids, not found ids)."""
        if isinstance(request_ids, str):
            request_ids = [request_ids]
        r = self._call(self._stub.Abort, pb.AbortRequest(request_ids=request_ids), timeout, self.retry)
        return list(r.aborted), list(r.not_found)

    # ---- tokenizer, info, health ----

    def tokenize(self, text, *, add_special_tokens=False, timeout=None):
        r = self._call(self._stub.Tokenize, pb.TokenizeRequest(text=text, add_special_tokens=add_special_tokens),
                       timeout, self.retry)
        return list(r.token_ids)

    def detokenize(self, token_ids, *, skip_special_tokens=False, timeout=None):
        r = self._call(self._stub.Detokenize,
                       pb.DetokenizeRequest(token_ids=token_ids, skip_special_tokens=skip_special_tokens),
                       timeout, self.retry)
        return r.text

    def model_info(self, *, timeout=None):
        """The GetModelInfoResponse message (model, vocab_size, limits, capacities, ledger, ...)."""
        return self._call(self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout, self.retry)

    def health(self, service="", *, timeout=None):
        """grpc.health.v1 status: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN"."""
        return self._call(self._health, service, timeout, self.retry)


class GenerationStream:
    """Iterates StreamDelta. Retries (when enabled) only before the first message arrived; once a
    delta was yielded an error is always raised. close() cancels the RPC; so does garbage collection."""

    def __init__(self, client, request, deadline, retry):
        self._client, self._request, self._deadline, self._retry = client, request, deadline, retry
        self._lock = threading.Lock()
        self._call = None
        self._received = False
        self._closed = False
        self.request_id = request.request_id or None
        self._start()

    def _start(self):
        with self._lock:
            if self._closed:
                return
            self._call = self._client._stub.GenerateStream(
                self._request, timeout=self._deadline.remaining(), metadata=self._client._metadata)

    def __iter__(self):
        return self

    def __next__(self):
        attempt = 0
        while True:
            if self._closed:
                raise StopIteration
            try:
                msg = next(self._call)
            except StopIteration:
                self._closed = True
                raise
            except grpc.RpcError as e:
                if self._closed:
                    raise StopIteration from None
                wait = self._retry.backoff(attempt)
                if self._received or not should_retry(self._retry, e.code(), attempt, self._deadline, wait):
                    self._closed = True
                    raise errors.from_rpc_error(e) from None
                time.sleep(wait)
                attempt += 1
                self._start()
                continue
            self._received = True
            self.request_id = msg.request_id or self.request_id
            return StreamDelta.from_pb(msg)

    def cancel(self):
        """Cancels the call on the server (ending it CANCELLED); further iteration stops."""
        with self._lock:
            self._closed = True
            if self._call is not None:
                self._call.cancel()

    close = cancel

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()

    def __del__(self):
        try:
            self.cancel()
        except Exception:
            pass
