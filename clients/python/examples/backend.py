"""A backend service calling Tandem: one generation, one stream, errors and a deadline.

    python backend.py [SERVER]      (default 127.0.0.1:50051; TANDEM_API_KEY if the server wants one)
"""

import os
import sys

import tandem_client as tc


def main(server):
    with tc.Client(server, api_key=os.environ.get("TANDEM_API_KEY"), timeout=30) as c:
        r = c.generate("Hello", max_new_tokens=16, temperature=0.7, seed=1)
        print(f"generate: {r.text!r} ({r.usage.generated_tokens} tokens, finish_reason={r.finish_reason})")
        print("stream: ", end="")
        with c.stream("Once upon a time", max_new_tokens=16) as s:
            for d in s:
                print(d.text, end="", flush=True)
                if d.finish_reason:
                    print(f"\nstream ended: {d.finish_reason}, {d.usage.generated_tokens} tokens")
        try:
            c.generate("Hello", top_p=3.0)
        except tc.InvalidArgument as e:
            print(f"refused: {e.code.name}: {e.message}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
