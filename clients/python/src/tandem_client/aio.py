"""The asyncio client (grpc.aio): the same methods as Client, as coroutines."""

import asyncio

import grpc
import grpc.aio

from tandem_client import errors
from tandem_client._gen.tandem.v1 import tandem_pb2 as pb
from tandem_client._gen.tandem.v1 import tandem_pb2_grpc as pb_grpc
from tandem_client._retry import NO_RETRY, Deadline, RetryPolicy, should_retry
from tandem_client.client import (HEALTH_CHECK, call_metadata, channel_credentials,
                                  decode_health_response, encode_health_request)
from tandem_client.results import GenerateResult, StreamDelta, build_request


class AsyncClient:
    """async with AsyncClient("127.0.0.1:50051") as c: r = await c.generate("Hi")  (see Client)."""

    def __init__(self, target, api_key=None, tls=False, root_certificates=None, private_key=None,
                 certificate_chain=None, timeout=None, retry=None, retry_generate=False,
                 metadata=None, options=None):
        creds = channel_credentials(tls, root_certificates, private_key, certificate_chain)
        opts = list(options or [])
        self._channel = (grpc.aio.secure_channel(target, creds, opts) if creds
                         else grpc.aio.insecure_channel(target, opts))
        self._stub = pb_grpc.TandemStub(self._channel)
        self._health = self._channel.unary_unary(HEALTH_CHECK, request_serializer=encode_health_request,
                                                 response_deserializer=decode_health_response)
        self._metadata = call_metadata(api_key, metadata)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.retry_generate = retry_generate

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _md(self, api_key):
        # api_key= per call overrides the client's (the gateway forwards each caller's key).
        return self._metadata if api_key is None else call_metadata(api_key, None)

    async def _call(self, method, request, timeout, retry, api_key=None):
        deadline = Deadline(self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            try:
                return await method(request, timeout=deadline.remaining(), metadata=self._md(api_key))
            except grpc.aio.AioRpcError as e:
                wait = retry.backoff(attempt)
                if not should_retry(retry, e.code(), attempt, deadline, wait):
                    raise errors.from_rpc_error(e) from None
            await asyncio.sleep(wait)
            attempt += 1

    def _gen_retry(self, retry_generate):
        on = self.retry_generate if retry_generate is None else retry_generate
        return self.retry if on else NO_RETRY

    async def generate(self, prompt=None, *, token_ids=None, timeout=None, retry_generate=None,
                       api_key=None, **params):
        req = build_request(prompt, token_ids, **params)
        return GenerateResult.from_pb(await self._call(self._stub.Generate, req, timeout,
                                                       self._gen_retry(retry_generate), api_key))

    async def stream(self, prompt=None, *, token_ids=None, timeout=None, retry_generate=None,
                     api_key=None, **params):
        """An async generator of StreamDelta; aclose() (or its task being cancelled, or garbage
        collection) cancels the call on the server."""
        req = build_request(prompt, token_ids, **params)
        deadline = Deadline(self.timeout if timeout is None else timeout)
        retry = self._gen_retry(retry_generate)
        attempt = 0
        received = False
        call = None
        try:
            while True:
                call = self._stub.GenerateStream(req, timeout=deadline.remaining(), metadata=self._md(api_key))
                try:
                    async for msg in call:
                        received = True
                        yield StreamDelta.from_pb(msg)
                    return
                except grpc.aio.AioRpcError as e:
                    wait = retry.backoff(attempt)
                    if received or not should_retry(retry, e.code(), attempt, deadline, wait):
                        raise errors.from_rpc_error(e) from None
                await asyncio.sleep(wait)
                attempt += 1
        finally:
            if call is not None and not call.done():
                call.cancel()

    async def abort(self, request_ids, *, timeout=None, api_key=None):
        if isinstance(request_ids, str):
            request_ids = [request_ids]
        r = await self._call(self._stub.Abort, pb.AbortRequest(request_ids=request_ids), timeout,
                             self.retry, api_key)
        return list(r.aborted), list(r.not_found)

    async def tokenize(self, text, *, add_special_tokens=False, timeout=None, api_key=None):
        r = await self._call(self._stub.Tokenize,
                             pb.TokenizeRequest(text=text, add_special_tokens=add_special_tokens),
                             timeout, self.retry, api_key)
        return list(r.token_ids)

    async def detokenize(self, token_ids, *, skip_special_tokens=False, timeout=None, api_key=None):
        r = await self._call(self._stub.Detokenize,
                             pb.DetokenizeRequest(token_ids=token_ids, skip_special_tokens=skip_special_tokens),
                             timeout, self.retry, api_key)
        return r.text

    async def model_info(self, *, timeout=None, api_key=None):
        return await self._call(self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout, self.retry,
                                api_key)

    async def health(self, service="", *, timeout=None):
        return await self._call(self._health, service, timeout, self.retry)
