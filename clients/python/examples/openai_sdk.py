"""The official openai package against tandem-openai.

    tandem-openai --server 127.0.0.1:50051 --port 8000 &
    python openai_sdk.py [http://127.0.0.1:8000/v1]
"""

import os
import sys

from openai import OpenAI


def main(base_url):
    c = OpenAI(base_url=base_url, api_key=os.environ.get("TANDEM_API_KEY", "none"))
    model = c.models.list().data[0].id
    r = c.completions.create(model=model, prompt="Hello", max_tokens=16, temperature=0)
    print(f"completion: {r.choices[0].text!r} ({r.usage.completion_tokens} tokens)")
    print("chat stream: ", end="")
    for ch in c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                        max_tokens=16, stream=True, stream_options={"include_usage": True}):
        if ch.choices:
            print(ch.choices[0].delta.content or "", end="", flush=True)
        else:
            print(f"\nusage: {ch.usage.prompt_tokens} prompt + {ch.usage.completion_tokens} completion tokens")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/v1")
