"""Streaming overhead of tandem-openai over direct gRPC, against a real `tandem serve`.

    python clients/python/bench/gateway_bench.py --tandem build/bin/tandem [--tokens 128]
        [--requests 20] [--concurrency 64]

Starts `tandem serve` (the built-in model, tp=1 pp=1) and the gateway, then for concurrency 1 measures
the time to the first message with text and to the end of the stream (p50), directly (AsyncClient.stream) and
through the gateway (SSE over aiohttp), and for --concurrency N the total streamed tokens/s of both.
"""

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import time

import aiohttp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import conftest  # noqa: E402  (the process helpers of the tests)
import tandem_client as tc  # noqa: E402


async def direct(client, tokens):
    t0 = time.perf_counter()
    times, n = [], 0
    async for d in client.stream("Bench", max_new_tokens=tokens, ignore_eos=True, temperature=0):
        if d.text:
            times.append(time.perf_counter())
        n += len(d.token_ids)
    times.append(time.perf_counter())
    return t0, times, n


async def gateway(session, url, tokens):
    body = {"model": "m", "prompt": "Bench", "max_tokens": tokens, "ignore_eos": True, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    times, n = [], 0
    async with session.post(url, json=body) as r:
        async for line in r.content:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["text"]:
                    times.append(time.perf_counter())
                if chunk.get("usage"):
                    n = chunk["usage"]["completion_tokens"]
    times.append(time.perf_counter())
    return t0, times, n


def summary(runs):
    # times: the arrival of every message carrying text, then the end of the stream.
    first = [times[0] - t0 for t0, times, _ in runs]
    total = [times[-1] - t0 for t0, times, _ in runs]
    return statistics.median(first) * 1e3, statistics.median(total) * 1e3


async def main(args):
    s = conftest.start_serve()
    g = conftest.start_gateway(s.address)
    url = f"http://{g.address}/v1/completions"
    try:
        async with tc.AsyncClient(s.address, timeout=120) as c, aiohttp.ClientSession() as session:
            await direct(c, 8)
            await gateway(session, url, 8)  # warm-up
            per_token = {}
            fns = {"direct gRPC": lambda: direct(c, args.tokens),
                   "gateway SSE": lambda: gateway(session, url, args.tokens)}
            runs = {name: [] for name in fns}
            for _ in range(args.requests):  # alternating, so load drift hits both alike
                for name, fn in fns.items():
                    runs[name].append(await fn())
            for name in fns:
                first, total = summary(runs[name])
                per_token[name] = total / args.tokens
                print(f"concurrency 1, {name}: first text p50 {first:.2f} ms, whole stream p50 {total:.1f} ms "
                      f"= {total / args.tokens:.3f} ms/token")
            print(f"gateway overhead per streamed token (p50): "
                  f"{per_token['gateway SSE'] - per_token['direct gRPC']:.3f} ms")
            for name, fn in (("direct gRPC", lambda: direct(c, args.tokens)),
                             ("gateway SSE", lambda: gateway(session, url, args.tokens))):
                t = time.perf_counter()
                runs = await asyncio.gather(*[fn() for _ in range(args.concurrency)])
                dt = time.perf_counter() - t
                n = sum(r[2] for r in runs)
                print(f"concurrency {args.concurrency}, {name}: {n} tokens in {dt:.2f} s = {n / dt:.0f} tokens/s")
    finally:
        g.stop()
        s.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tandem", default=conftest.TANDEM)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    conftest.TANDEM = a.tandem
    asyncio.run(main(a))
