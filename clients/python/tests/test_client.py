"""tandem_client.Client and AsyncClient against a real `tandem serve` (the built-in default model)."""

import asyncio
import gc
import threading
import time

import grpc
import pytest

import tandem_client as tc
from conftest import API_KEY, free_port, start_serve


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def cancelled(info):
    return info.ledger.terminated_by_code.get("CANCELLED", 0)


@pytest.fixture
def client(server):
    with tc.Client(server.address, timeout=30) as c:
        yield c


def test_health_and_model_info(client):
    assert client.health() == "SERVING"
    info = client.model_info()
    assert info.vocab_size > 0
    assert info.limits.max_new_tokens > 0
    assert info.capacities.num_slots > 0


def test_tokenize_detokenize_round_trip(client):
    ids = client.tokenize("hello world")
    assert ids and all(isinstance(i, int) for i in ids)
    assert client.detokenize(ids) == "hello world"


def test_generate_text_and_token_ids(client):
    r = client.generate("Hello", max_new_tokens=8, ignore_eos=True, temperature=0)
    assert isinstance(r, tc.GenerateResult)
    assert len(r.token_ids) == 8 and r.finish_reason == "length"
    assert r.usage.generated_tokens == 8 and r.usage.prompt_tokens == len(client.tokenize("Hello", add_special_tokens=True))
    assert r.request_id
    assert r.text == client.detokenize(r.token_ids, skip_special_tokens=True)
    # The same prompt as token ids gives the same greedy tokens.
    r2 = client.generate(token_ids=client.tokenize("Hello", add_special_tokens=True), max_tokens=8, ignore_eos=True, temperature=0)
    assert r2.token_ids == r.token_ids


def test_generate_seed_reproducible_and_logprobs(client):
    a = client.generate("Hi", max_new_tokens=6, ignore_eos=True, temperature=1.0, seed=7, logprobs=True,
                        top_logprobs=2)
    b = client.generate("Hi", max_new_tokens=6, ignore_eos=True, temperature=1.0, seed=7)
    assert a.token_ids == b.token_ids
    assert len(a.logprobs) == 6 and len(a.logprobs[0].top) == 2


def test_stream_deltas_add_up(client):
    full = client.generate("Once", max_new_tokens=12, ignore_eos=True, temperature=0)
    deltas = list(client.stream("Once", max_new_tokens=12, ignore_eos=True, temperature=0))
    assert "".join(d.text for d in deltas) == full.text
    assert [t for d in deltas for t in d.token_ids] == full.token_ids
    assert deltas[-1].finish_reason == "length" and deltas[-1].usage.generated_tokens == 12
    assert all(d.finish_reason is None and d.usage is None for d in deltas[:-1])


def test_invalid_argument_carries_code_and_message(client):
    with pytest.raises(tc.InvalidArgument) as e:
        client.generate("Hi", top_p=2.0)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "top_p" in e.value.message
    with pytest.raises(tc.InvalidArgument):
        list(client.stream("Hi", max_new_tokens=-1))
    with pytest.raises(TypeError):
        client.generate("Hi", no_such_param=1)


def test_deadline_exceeded(client):
    with pytest.raises(tc.DeadlineExceeded) as e:
        client.generate("Hi", max_new_tokens=1000, ignore_eos=True, timeout=0.05)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_stream_close_cancels_on_server(client):
    before = cancelled(client.model_info())
    s = client.stream("Long", max_new_tokens=1000, ignore_eos=True)
    first = next(s)
    assert first.request_id
    s.close()
    assert list(s) == []
    assert wait_for(lambda: cancelled(client.model_info()) == before + 1)
    info = client.model_info()
    assert wait_for(lambda: client.model_info().ledger.live == 0)
    caps = client.model_info().capacities
    assert caps.free_slots == caps.num_slots and caps.free_blocks == caps.num_blocks, info


def test_stream_garbage_collected_cancels(client):
    before = cancelled(client.model_info())

    def consume_two():
        for i, _ in enumerate(client.stream("Long", max_new_tokens=1000, ignore_eos=True)):
            if i == 1:
                break  # the generator object is dropped here

    consume_two()
    gc.collect()
    assert wait_for(lambda: cancelled(client.model_info()) == before + 1)


def test_abort_by_request_id(client):
    s = client.stream("Long", max_new_tokens=1000, ignore_eos=True, request_id="abort-me-1")
    next(s)
    aborted, not_found = client.abort(["abort-me-1", "never-was"])
    assert aborted == ["abort-me-1"] and not_found == ["never-was"]
    with pytest.raises(tc.Cancelled):
        for _ in s:
            pass


class CountCalls(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self):
        self.calls = 0

    def intercept_unary_unary(self, continuation, details, request):
        self.calls += 1
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        self.calls += 1
        return continuation(details, request)


def test_retries_are_bounded_and_generate_is_not_retried_by_default():
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    policy = tc.RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    counter = CountCalls()
    with tc.Client(target, retry=policy, interceptors=[counter], timeout=10) as c:
        with pytest.raises(tc.Unavailable):
            c.tokenize("x")
        assert counter.calls == 3
        counter.calls = 0
        with pytest.raises(tc.Unavailable):
            c.generate("x")
        assert counter.calls == 1
        counter.calls = 0
        with pytest.raises(tc.Unavailable):
            list(c.stream("x"))
        assert counter.calls == 1
        counter.calls = 0
        with pytest.raises(tc.Unavailable):
            c.generate("x", retry_generate=True)
        assert counter.calls == 3
        counter.calls = 0
        with pytest.raises(tc.Unavailable):
            list(c.stream("x", retry_generate=True))
        assert counter.calls == 3


def test_retry_rides_out_a_briefly_unavailable_server():
    port = free_port()
    policy = tc.RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.2)
    result = {}

    def call():
        with tc.Client(f"127.0.0.1:{port}", retry=policy, timeout=60) as c:
            try:
                result["ids"] = c.tokenize("hello")
            except Exception as e:  # reported below
                result["error"] = e

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # the first attempts fail: nothing listens yet
    s = start_serve("--port", str(port))
    try:
        t.join(60)
        assert "error" not in result, result
        assert result["ids"]
    finally:
        s.stop()


def test_api_key(keyed_server):
    with tc.Client(keyed_server.address, timeout=30) as c:
        assert c.health() == "SERVING"  # health needs no key
        with pytest.raises(tc.Unauthenticated) as e:
            c.tokenize("x")
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with tc.Client(keyed_server.address, api_key="wrong-key-0123456789", timeout=30) as c:
        with pytest.raises(tc.Unauthenticated):
            c.generate("x", max_new_tokens=2)
    with tc.Client(keyed_server.address, api_key=API_KEY, timeout=30) as c:
        assert c.generate("x", max_new_tokens=2, ignore_eos=True).usage.generated_tokens == 2


def test_async_client(server):
    async def main():
        async with tc.AsyncClient(server.address, timeout=30) as c:
            assert await c.health() == "SERVING"
            ids = await c.tokenize("hello")
            assert await c.detokenize(ids) == "hello"
            r = await c.generate("Once", max_new_tokens=6, ignore_eos=True, temperature=0)
            parts = [d async for d in c.stream("Once", max_new_tokens=6, ignore_eos=True, temperature=0)]
            assert "".join(p.text for p in parts) == r.text
            assert parts[-1].finish_reason == "length"
            with pytest.raises(tc.InvalidArgument):
                await c.generate("Hi", temperature=-1.0)
            before = cancelled(await c.model_info())
            gen = c.stream("Long", max_new_tokens=1000, ignore_eos=True)
            await gen.__anext__()
            await gen.aclose()
            for _ in range(500):
                if cancelled(await c.model_info()) == before + 1:
                    break
                await asyncio.sleep(0.02)
            assert cancelled(await c.model_info()) == before + 1

    asyncio.run(main())


def test_tls_with_a_private_ca(tmp_path):
    import shutil
    import subprocess
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "server.key", tmp_path / "server.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    s = start_serve("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        with tc.Client(s.address, root_certificates=cert.read_bytes(), timeout=30) as c:
            assert c.health() == "SERVING"
            assert c.generate("Hi", max_new_tokens=3, ignore_eos=True).usage.generated_tokens == 3
        with tc.Client(s.address, timeout=5, retry=tc.RetryPolicy(max_attempts=1)) as c:  # plaintext
            with pytest.raises(tc.Unavailable):
                c.tokenize("x")
        # The gateway in front of a TLS server (--tls-ca).
        import openai
        from conftest import start_gateway
        g = start_gateway(s.address, "--tls-ca", str(cert))
        try:
            o = openai.OpenAI(base_url=f"http://{g.address}/v1", api_key="none", max_retries=0, timeout=30)
            r = o.completions.create(model="m", prompt="Hi", max_tokens=2, extra_body={"ignore_eos": True})
            assert r.usage.completion_tokens == 2
        finally:
            g.stop()
    finally:
        s.stop()
