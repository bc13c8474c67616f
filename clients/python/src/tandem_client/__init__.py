"""tandem_client: a Python client for the Tandem inference server (tandem.v1 over gRPC).

    from tandem_client import Client
    with Client("127.0.0.1:50051") as c:
        print(c.generate("Hello", max_new_tokens=16).text)

docs/clients.md in the Tandem repository describes it, the retry semantics and the
OpenAI-compatible gateway (tandem-openai).
"""

from tandem_client._retry import RetryPolicy
from tandem_client.aio import AsyncClient
from tandem_client.client import Client, GenerationStream
from tandem_client.errors import (Cancelled, DeadlineExceeded, InvalidArgument, PermissionDenied,
                                  ResourceExhausted, TandemError, Unauthenticated, Unavailable)
from tandem_client.results import GenerateResult, StreamDelta, TokenLogprob, Usage

__all__ = ["AsyncClient", "Cancelled", "Client", "DeadlineExceeded", "GenerateResult", "GenerationStream",
           "InvalidArgument", "PermissionDenied", "ResourceExhausted", "RetryPolicy", "StreamDelta",
           "TandemError", "TokenLogprob", "Unauthenticated", "Unavailable", "Usage"]
