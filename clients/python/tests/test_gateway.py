"""The tandem-openai gateway against a real `tandem serve`, driven by the official `openai` client
(and plain HTTP for malformed bodies)."""

import http.client
import json
import socket
import time

import openai
import pytest

import tandem_client as tc
from conftest import API_KEY


def oai(gw, key="unused"):
    return openai.OpenAI(base_url=f"http://{gw.address}/v1", api_key=key, max_retries=0, timeout=30)


def post(gw, path, body, headers=None):
    host, port = gw.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", path, body=body if isinstance(body, (str, bytes)) else json.dumps(body),
                 headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data)


def test_models(gateway):
    models = oai(gateway).models.list().data
    assert len(models) == 1 and models[0].id


def test_completion(gateway, server):
    c = oai(gateway)
    r = c.completions.create(model="tiny", prompt="Hello", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens == len(tc.Client(server.address).generate(
        "Hello", max_new_tokens=8, temperature=0).token_ids)
    direct = tc.Client(server.address).generate("Hello", max_new_tokens=8, temperature=0)
    assert r.choices[0].text == direct.text


def test_completion_stream_with_usage(gateway):
    c = oai(gateway)
    full = c.completions.create(model="tiny", prompt="Once", max_tokens=10, temperature=0)
    chunks = list(c.completions.create(model="tiny", prompt="Once", max_tokens=10, temperature=0, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == full.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1])
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == full.choices[0].finish_reason


def test_chat_and_chat_stream(gateway):
    c = oai(gateway)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    r = c.chat.completions.create(model="tiny", messages=msgs, max_tokens=8, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    # The documented template: the prompt the server saw has this many tokens.
    prompt = "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    assert r.usage.prompt_tokens == len(tc.Client(gateway_server_address(gateway)).tokenize(
        prompt, add_special_tokens=True))
    chunks = list(c.chat.completions.create(model="tiny", messages=msgs, max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage.total_tokens == r.usage.total_tokens


def gateway_server_address(gw):
    return gw.argv[gw.argv.index("--server") + 1]


def test_seed_reproducible_and_stop(gateway):
    c = oai(gateway)
    kw = dict(model="tiny", prompt="Seed", max_tokens=12, temperature=1.0, top_p=0.9)
    a = c.completions.create(seed=42, **kw).choices[0].text
    b = c.completions.create(seed=42, **kw).choices[0].text
    assert a == b
    # Stop at a piece of the greedy text: the output ends before it, finish_reason "stop".
    full = c.completions.create(model="tiny", prompt="Stop", max_tokens=16, temperature=0).choices[0].text
    pieces = [full[i:i + 2] for i in range(2, len(full) - 1)
              if full[i:i + 2].strip() and "\ufffd" not in full[i:i + 2] and full[i:i + 2] not in full[:i + 1]]
    if not pieces:
        pytest.skip(f"greedy text {full!r} has no clean stop string")
    piece = pieces[0]
    r = c.completions.create(model="tiny", prompt="Stop", max_tokens=16, temperature=0, stop=[piece])
    assert r.choices[0].finish_reason == "stop" and piece not in r.choices[0].text


def test_errors_map_to_openai_errors(gateway):
    c = oai(gateway)
    with pytest.raises(openai.BadRequestError) as e:  # INVALID_ARGUMENT from the server
        c.completions.create(model="tiny", prompt="Hi", max_tokens=8, top_p=5.0)
    assert e.value.status_code == 400 and "top_p" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:  # refused by the gateway
        c.completions.create(model="tiny", prompt="Hi", n=2)
    assert "'n'" in e.value.message
    with pytest.raises(openai.BadRequestError):  # a streaming call fails before its headers
        list(c.completions.create(model="tiny", prompt="Hi", max_tokens=100000, stream=True))


def test_malformed_bodies_name_the_field(gateway):
    status, body = post(gateway, "/v1/completions", "{not json")
    assert status == 400 and "JSON" in body["error"]["message"]
    status, body = post(gateway, "/v1/completions", {"model": "m", "prompt": "x", "max_tokens": "ten"})
    assert status == 400 and body["error"]["param"] == "max_tokens"
    status, body = post(gateway, "/v1/chat/completions", {"model": "m", "messages": [{"content": "x"}]})
    assert status == 400 and body["error"]["param"] == "messages[0].role"
    status, body = post(gateway, "/v1/completions", {"model": "m"})
    assert status == 400 and body["error"]["param"] == "prompt"


def test_unreachable_server_is_503():
    from conftest import free_port, start_gateway
    g = start_gateway(f"127.0.0.1:{free_port()}", "--timeout", "5")
    try:
        with pytest.raises(openai.APIStatusError) as e:
            oai(g).completions.create(model="tiny", prompt="Hi", max_tokens=2)
        assert e.value.status_code == 503
    finally:
        g.stop()


def test_api_key_forwarded(keyed_gateway):
    with pytest.raises(openai.AuthenticationError) as e:
        oai(keyed_gateway, key="wrong-key-0123456789").completions.create(model="m", prompt="Hi", max_tokens=2)
    assert e.value.status_code == 401
    r = oai(keyed_gateway, key=API_KEY).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert r.usage.completion_tokens >= 1


def test_client_disconnect_cancels_the_stream(gateway, server):
    c = tc.Client(server.address, timeout=30)
    before = c.model_info().ledger.terminated_by_code.get("CANCELLED", 0)
    host, port = gateway.address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    body = json.dumps({"model": "m", "prompt": "Long", "max_tokens": 1000, "stream": True,
                       "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data: " not in got:  # streaming has begun
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    s.close()
    end = time.monotonic() + 10
    while time.monotonic() < end and c.model_info().ledger.terminated_by_code.get("CANCELLED", 0) == before:
        time.sleep(0.02)
    assert c.model_info().ledger.terminated_by_code.get("CANCELLED", 0) == before + 1
    assert "Traceback" not in gateway.stderr()


def test_deadline_is_504_and_full_queue_is_429(server):
    from conftest import start_gateway, start_serve
    g = start_gateway(server.address, "--timeout", "0.05")
    try:
        with pytest.raises(openai.APIStatusError) as e:
            oai(g).completions.create(model="m", prompt="Hi", max_tokens=1000, extra_body={"ignore_eos": True})
        assert e.value.status_code == 504
    finally:
        g.stop()
    # One slot, a queue of one: a running and a queued request fill it, a third is refused.
    s = start_serve("--slots", "1", "--max-queued-requests", "1")
    g = start_gateway(s.address)
    c = tc.Client(s.address, timeout=30)
    try:
        running = c.stream("Long", max_new_tokens=1000, ignore_eos=True)
        next(running)
        queued = c.stream("Long", max_new_tokens=1000, ignore_eos=True)
        end = time.monotonic() + 10
        while c.model_info().capacities.queued_requests < 1 and time.monotonic() < end:
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as e:
            oai(g).completions.create(model="m", prompt="Hi", max_tokens=2)
        assert e.value.status_code == 429
        with pytest.raises(tc.ResourceExhausted):
            c.generate("Hi", max_new_tokens=2, retry_generate=False)
        running.close()
        queued.close()
    finally:
        c.close()
        g.stop()
        s.stop()


def test_examples_run(server, gateway):
    import pathlib
    import subprocess
    import sys
    ex = pathlib.Path(__file__).resolve().parents[1] / "examples"
    out = subprocess.run([sys.executable, str(ex / "backend.py"), server.address], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "generate:" in out and "stream ended:" in out and "refused: INVALID_ARGUMENT" in out
    out = subprocess.run([sys.executable, str(ex / "openai_sdk.py"), f"http://{gateway.address}/v1"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "completion:" in out and "usage:" in out


def test_chat_with_a_checkpoint_chat_template(server, tmp_path):
    from conftest import start_gateway
    template = ("{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tool messages') }}"
                "{% endif %}[{{ m.role }}] {{ m.content }}{{ eos_token }}\n{% endfor %}"
                "{% if add_generation_prompt %}[assistant] {% endif %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "eos_token": "</s>"}))
    g = start_gateway(server.address, "--chat-template", str(tmp_path))
    try:
        c = oai(g)
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                      temperature=0)
        expected = tc.Client(server.address).tokenize("[user] Hi</s>\n[assistant] ", add_special_tokens=True)
        assert r.usage.prompt_tokens == len(expected)
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="m", messages=[{"role": "tool", "content": "x"}], max_tokens=2)
        assert "no tool messages" in e.value.message
    finally:
        g.stop()


def test_logprobs(gateway):
    c = oai(gateway)
    r = c.completions.create(model="m", prompt="Hi", max_tokens=4, temperature=0, logprobs=2,
                             extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.token_logprobs) == 4 and all(x <= 0 for x in lp.token_logprobs)
    assert all(len(t) == 2 for t in lp.top_logprobs)
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                  logprobs=True, top_logprobs=1, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 3 and len(content[0].top_logprobs) == 1


def test_gateway_api_key_is_the_fallback(keyed_server, keyed_gateway):
    from conftest import start_gateway
    status, body = post(keyed_gateway, "/v1/completions", {"model": "m", "prompt": "Hi", "max_tokens": 2})
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    g = start_gateway(keyed_server.address, "--api-key", API_KEY)
    try:
        status, body = post(g, "/v1/completions", {"model": "m", "prompt": "Hi", "max_tokens": 2})
        assert status == 200 and body["usage"]["completion_tokens"] >= 1
        # A caller's own key still wins over the gateway's.
        status, body = post(g, "/v1/completions", {"model": "m", "prompt": "Hi", "max_tokens": 2},
                            {"Authorization": "Bearer wrong-key-0123456789"})
        assert status == 401
    finally:
        g.stop()


def test_chat_without_a_chat_template_is_a_400_saying_so(server):
    from conftest import start_gateway
    g = start_gateway(server.address, chat_template=False)
    try:
        c = oai(g)
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
        assert "no chat template" in e.value.message and "--chat-template" in e.value.message
        assert c.completions.create(model="m", prompt="Hi", max_tokens=2).choices[0].text is not None
    finally:
        g.stop()
