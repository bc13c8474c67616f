"""tandem-openai: a stateless OpenAI-compatible HTTP gateway in front of a Tandem server.

    tandem-openai --server 127.0.0.1:50051 --port 8000 [--api-key KEY] [--tls [--tls-ca F]]

Serves GET /v1/models, POST /v1/completions and POST /v1/chat/completions (SSE streaming with
stream_options.include_usage). The caller's `Authorization: Bearer KEY` is forwarded to Tandem
(else --api-key, if given). docs/clients.md lists what is and is not supported.
"""

import argparse
import asyncio
import json
import os
import time

import grpc
from aiohttp import web

from tandem_client import errors
from tandem_client.aio import AsyncClient

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
              404: "not_found_error", 429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}

# Chat messages become one prompt with this template when no --chat-template is given (the gateway
# cannot read the server's checkpoint, and the tiny test model has no chat template): every message as "<|role|>\ncontent\n", then "<|assistant|>\n".

# OpenAI parameters that are accepted and ignored (they change nothing in the output).
IGNORED = {"model", "user", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens",
           "metadata", "store", "service_tier", "parallel_tool_calls"}


class BadRequest(Exception):
    def __init__(self, message, param=None):
        super().__init__(message)
        self.message, self.param = message, param


def error_response(status, message, param=None, code=None):
    body = {"error": {"message": message, "type": ERROR_TYPE.get(status, "server_error"),
                      "param": param, "code": code}}
    return web.json_response(body, status=status)


def tandem_error_response(e):
    status = HTTP_STATUS.get(e.code, 500)
    return error_response(status, e.message, code=e.code.name.lower())


def finish_reason(r):
    return {"length": "length", "eos": "stop", "stop_string": "stop", "stop_token": "stop"}.get(r, r)


def _number(body, name, lo=None, hi=None, integer=False):
    v = body.get(name)
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if not ok or isinstance(v, bool):
        raise BadRequest(f"'{name}' must be {'an integer' if integer else 'a number'}, got {v!r}", name)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise BadRequest(f"'{name}' is {v}, outside [{lo}, {hi}]", name)
    return v


def sampling_params(body, chat):
    """Tandem generation parameters from an OpenAI request body (raises BadRequest)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    n = _number(body, "n", integer=True)
    if n not in (None, 1):
        raise BadRequest(f"'n' is {n}; only n=1 is supported", "n")
    for name in ("best_of",):
        if body.get(name) not in (None, 1):
            raise BadRequest(f"'{name}' is not supported", name)
    for name in ("echo", "suffix", "logit_bias", "tools", "tool_choice", "functions", "function_call",
                 "response_format", "audio", "modalities", "prediction"):
        if body.get(name) not in (None, False, {}, []):
            raise BadRequest(f"'{name}' is not supported by this gateway", name)
    p = {}
    max_tokens = _number(body, "max_completion_tokens" if chat and "max_completion_tokens" in body
                         else "max_tokens", lo=1, integer=True)
    if max_tokens is not None:
        p["max_new_tokens"] = max_tokens
    elif not chat:
        p["max_new_tokens"] = 16  # the OpenAI default for completions
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        v = _number(body, name)
        if v is not None:
            p[name] = float(v)
    # vLLM-style extensions (not in the OpenAI API): top_k, min_p, repetition_penalty, ignore_eos,
    # min_tokens.
    for name in ("min_p", "repetition_penalty"):
        v = _number(body, name)
        if v is not None:
            p[name] = float(v)
    for name, field in (("top_k", "top_k"), ("min_tokens", "min_new_tokens")):
        v = _number(body, name, integer=True)
        if v is not None:
            p[field] = v
    if body.get("ignore_eos") is not None:
        if not isinstance(body["ignore_eos"], bool):
            raise BadRequest("'ignore_eos' must be a boolean", "ignore_eos")
        p["ignore_eos"] = body["ignore_eos"]
    seed = _number(body, "seed", integer=True)
    if seed is not None:
        p["seed"] = seed & 0xFFFFFFFFFFFFFFFF
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("'stop' must be a string or a list of strings", "stop")
        if stop:
            p["stop"] = stop
    if chat:
        if body.get("logprobs"):
            p["logprobs"] = True
            top = _number(body, "top_logprobs", lo=0, integer=True)
            if top:
                p["top_logprobs"] = top
    else:
        lp = _number(body, "logprobs", lo=0, integer=True)
        if lp is not None:
            p["logprobs"] = True
            if lp:
                p["top_logprobs"] = lp
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    return p


def chat_messages(messages):
    """Validated messages with string content (text parts joined)."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"'messages[{i}].role' must be a string", f"messages[{i}].role")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text is supported
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise BadRequest(f"'messages[{i}].content': only text parts are supported",
                                     f"messages[{i}].content")
                texts.append(str(part.get("text", "")))
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise BadRequest(f"'messages[{i}].content' must be a string or a list of text parts",
                             f"messages[{i}].content")
        out.append({**m, "content": content})
    return out


class ChatTemplate:
    """A Hugging Face chat template (Jinja, rendered in a sandbox as transformers does). source: a
    template file, a tokenizer_config.json, or a checkpoint directory holding one (its
    "chat_template", "bos_token" and "eos_token"). Without one (no source, or a checkpoint whose
    tokenizer_config.json has no template) every chat request is a 400 saying so."""

    def __init__(self, source=None):
        self.template = None
        self.special = {"bos_token": "", "eos_token": ""}
        self.missing = ("the model has no chat template: start tandem-openai with --chat-template "
                        "(a template file, a tokenizer_config.json or the checkpoint directory)")
        if source is None:
            return
        path = source
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer_config.json")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".json"):
            cfg = json.loads(text)
            text = cfg.get("chat_template")
            if isinstance(text, list):  # named templates: the "default" one
                text = next((t["template"] for t in text if t.get("name") == "default"), None)
            if not isinstance(text, str):
                self.missing = f"the model has no chat template ({path} has no chat_template)"
                return
            for k in self.special:
                v = cfg.get(k)
                self.special[k] = v.get("content", "") if isinstance(v, dict) else (v or "")
        try:
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            raise SystemExit("tandem-openai: --chat-template needs jinja2 (pip install jinja2)") from None

        def raise_exception(message):
            raise BadRequest(f"chat template: {message}", "messages")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        self.template = env.from_string(text)

    def render(self, messages):
        messages = chat_messages(messages)
        if self.template is None:
            raise BadRequest(self.missing, "messages")
        try:
            return self.template.render(messages=messages, add_generation_prompt=True, **self.special)
        except BadRequest:
            raise
        except Exception as e:  # a template error on these messages
            raise BadRequest(f"chat template failed on these messages: {e}", "messages") from None


def completion_prompt(body):
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return {"prompt": prompt}
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return {"token_ids": prompt}
    raise BadRequest("'prompt' must be a string, a list of token ids, or a list with one of those "
                     "(batched prompts are not supported)", "prompt")


def usage_json(u):
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.generated_tokens,
            "total_tokens": u.prompt_tokens + u.generated_tokens}


class Gateway:
    def __init__(self, client, model_name=None, api_key=None, chat_template=None):
        self.client = client
        self.chat_template = chat_template or ChatTemplate()
        self.model_name = model_name
        self.api_key = api_key

    def key(self, request):
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            return auth[7:].strip()
        return self.api_key or ""

    async def name(self, key):
        if self.model_name is None:
            info = await self.client.model_info(api_key=key)
            self.model_name = os.path.basename(info.model.rstrip("/")) or info.model
        return self.model_name

    async def models(self, request):
        try:
            name = await self.name(self.key(request))
        except errors.TandemError as e:
            return tandem_error_response(e)
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "tandem"}]})

    async def completions(self, request):
        return await self.handle(request, chat=False)

    async def chat(self, request):
        return await self.handle(request, chat=True)

    async def handle(self, request, chat):
        try:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise BadRequest(f"the request body is not valid JSON: {e}") from None
            params = sampling_params(body, chat)
            inputs = {"prompt": self.chat_template.render(body.get("messages"))} if chat else completion_prompt(body)
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise BadRequest("'stream' must be a boolean", "stream")
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        except BadRequest as e:
            return error_response(400, e.message, e.param)
        key = self.key(request)
        try:
            model = body.get("model") if isinstance(body.get("model"), str) else await self.name(key)
            if not stream:
                r = await self.client.generate(**inputs, api_key=key, **params)
                return web.json_response(self.full_response(chat, r, model))
            return await self.stream(request, chat, inputs, params, key, model, include_usage)
        except errors.TandemError as e:
            return tandem_error_response(e)

    def full_response(self, chat, r, model):
        created = int(time.time())
        lp = logprobs_json(chat, r.logprobs) if r.logprobs else None
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": r.text},
                      "finish_reason": finish_reason(r.finish_reason), "logprobs": lp}
            return {"id": f"chatcmpl-{r.request_id}", "object": "chat.completion", "created": created,
                    "model": model, "choices": [choice], "usage": usage_json(r.usage)}
        choice = {"index": 0, "text": r.text, "finish_reason": finish_reason(r.finish_reason), "logprobs": lp}
        return {"id": f"cmpl-{r.request_id}", "object": "text_completion", "created": created,
                "model": model, "choices": [choice], "usage": usage_json(r.usage)}

    async def stream(self, request, chat, inputs, params, key, model, include_usage):
        gen = self.client.stream(**inputs, api_key=key, **params)
        try:
            # The first message before the headers: an error that comes at once (a bad argument, a
            # full queue, a bad key) is a plain HTTP error, not an event in a 200 stream.
            first = await gen.__anext__()
        except StopAsyncIteration:
            first = None
        except errors.TandemError as e:
            await gen.aclose()
            return tandem_error_response(e)
        created = int(time.time())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        rid = None

        async def send(choices, usage=None):
            chunk = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{rid}", "object": obj, "created": created,
                     "model": model, "choices": choices}
            if include_usage:
                chunk["usage"] = usage
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        def choice(text, reason, first_chunk=False):
            if chat:
                delta = {"role": "assistant", "content": text} if first_chunk else (
                    {"content": text} if text or reason is None else {})
                return {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
            return {"index": 0, "text": text, "finish_reason": reason, "logprobs": None}

        try:
            d, first_chunk = first, True
            while d is not None:
                rid = d.request_id
                reason = finish_reason(d.finish_reason) if d.finish_reason else None
                if d.text or reason or first_chunk:
                    await send([choice(d.text, reason, first_chunk)])
                    first_chunk = False
                if d.usage is not None and include_usage:
                    await send([], usage_json(d.usage))
                try:
                    d = await gen.__anext__()
                except StopAsyncIteration:
                    d = None
            await resp.write(b"data: [DONE]\n\n")
        except errors.TandemError as e:  # after the headers: an error event, then the end
            body = {"error": {"message": e.message, "type": ERROR_TYPE.get(HTTP_STATUS.get(e.code, 500),
                                                                           "server_error"),
                              "param": None, "code": e.code.name.lower()}}
            await resp.write(b"data: " + json.dumps(body).encode() + b"\n\n")
        except ConnectionResetError:  # the client went away: the call is cancelled below
            return resp
        finally:
            # Also when the handler is cancelled (the client disconnected): cancel the gRPC call.
            await gen.aclose()
        await resp.write_eof()
        return resp


def logprobs_json(chat, lps):
    # Tokens are given as their ids (as strings): the gateway does not detokenize single tokens.
    if chat:
        return {"content": [{"token": str(x.token_id), "logprob": x.logprob, "bytes": None,
                             "top_logprobs": [{"token": str(t.token_id), "logprob": t.logprob, "bytes": None}
                                              for t in x.top]} for x in lps]}
    return {"tokens": [str(x.token_id) for x in lps], "token_logprobs": [x.logprob for x in lps],
            "top_logprobs": [{str(t.token_id): t.logprob for t in x.top} for x in lps], "text_offset": []}


def make_app(client, model_name=None, api_key=None, chat_template=None):
    gw = Gateway(client, model_name, api_key, chat_template)
    app = web.Application()
    app.router.add_get("/v1/models", gw.models)
    app.router.add_post("/v1/completions", gw.completions)
    app.router.add_post("/v1/chat/completions", gw.chat)
    app.router.add_get("/health", lambda r: web.Response(text="ok"))
    return app


async def serve(args):
    root = open(args.tls_ca, "rb").read() if args.tls_ca else None
    client = AsyncClient(args.server, api_key=args.api_key, tls=args.tls or bool(root),
                         root_certificates=root, timeout=args.timeout)
    app = make_app(client, args.model_name, args.api_key, ChatTemplate(args.chat_template))
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"tandem-openai: listening on {args.host}:{port} (server {args.server})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await client.close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tandem-openai", description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default="127.0.0.1:50051", help="the Tandem server (host:port)")
    ap.add_argument("--host", default="127.0.0.1", help="HTTP listen host (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="HTTP port (0: any free port, printed)")
    ap.add_argument("--api-key", default=os.environ.get("TANDEM_API_KEY"),
                    help="key sent to Tandem when the HTTP caller sends none (default $TANDEM_API_KEY)")
    ap.add_argument("--tls", action="store_true", help="TLS to the server with the system roots")
    ap.add_argument("--tls-ca", help="TLS to the server with this PEM CA")
    ap.add_argument("--model-name", help="the model id /v1/models reports (default: the server's model "
                                         "directory name)")
    ap.add_argument("--chat-template", help="a Jinja chat template file, or a tokenizer_config.json or "
                                           "checkpoint directory with one (default: the built-in template)")
    ap.add_argument("--timeout", type=float, default=None, help="deadline of each call in seconds")
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
