"""Result types and the request builder shared by Client and AsyncClient."""

import dataclasses
from typing import List, Optional

from tandem_client._gen.tandem.v1 import tandem_pb2 as pb

FINISH_REASONS = {
    pb.FINISH_REASON_UNSPECIFIED: None,
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_EOS: "eos",
    pb.FINISH_REASON_STOP_STRING: "stop_string",
    pb.FINISH_REASON_STOP_TOKEN: "stop_token",
    pb.FINISH_REASON_CANCELLED: "cancelled",
    pb.FINISH_REASON_DEADLINE: "deadline",
}


@dataclasses.dataclass
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    queue_time_us: int = 0
    first_token_time_us: int = 0
    total_time_us: int = 0
    preemptions: int = 0

    @classmethod
    def from_pb(cls, u):
        return cls(**{f.name: getattr(u, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: List["TokenLogprob"] = dataclasses.field(default_factory=list)

    @classmethod
    def from_pb(cls, lp):
        return cls(lp.token_id, lp.logprob,
                   [TokenLogprob(t.token_id, t.logprob) for t in getattr(lp, "top", [])])


@dataclasses.dataclass
class GenerateResult:
    text: str
    token_ids: List[int]
    finish_reason: Optional[str]  # length, eos, stop_string, stop_token, cancelled, deadline
    usage: Usage
    request_id: str
    matched_stop: str = ""
    logprobs: List[TokenLogprob] = dataclasses.field(default_factory=list)

    @classmethod
    def from_pb(cls, r):
        return cls(r.text, list(r.token_ids), FINISH_REASONS.get(r.finish_reason), Usage.from_pb(r.usage),
                   r.request_id, r.matched_stop, [TokenLogprob.from_pb(x) for x in r.logprobs])


@dataclasses.dataclass
class StreamDelta:
    """One streamed chunk; finish_reason and usage are set on the last one only."""

    text: str
    token_ids: List[int]
    request_id: str
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    matched_stop: str = ""
    logprobs: List[TokenLogprob] = dataclasses.field(default_factory=list)

    @classmethod
    def from_pb(cls, r):
        last = r.finish_reason != pb.FINISH_REASON_UNSPECIFIED
        return cls(r.text_delta, list(r.token_ids), r.request_id, FINISH_REASONS.get(r.finish_reason),
                   Usage.from_pb(r.usage) if last else None, r.matched_stop,
                   [TokenLogprob.from_pb(x) for x in r.logprobs])


_SAMPLING = {"temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
             "frequency_penalty", "seed"}
_STOPPING = {"max_new_tokens", "min_new_tokens", "stop", "stop_token_ids", "ignore_eos",
             "include_stop_str_in_output"}
_TOP = {"priority", "request_id", "time_limit_ms", "return_token_ids", "skip_text"}


def build_request(prompt=None, token_ids=None, **params):
    """A GenerateRequest from a prompt (str) or token ids and keyword parameters named as in the proto
    (max_tokens is accepted for max_new_tokens; logprobs=True and top_logprobs=N)."""
    if (prompt is None) == (token_ids is None):
        raise TypeError("give exactly one of prompt or token_ids")
    req = pb.GenerateRequest()
    if prompt is not None:
        req.text = prompt
    else:
        req.tokens.ids.extend(token_ids)
    if "max_tokens" in params:
        params["max_new_tokens"] = params.pop("max_tokens")
    req.return_token_ids = True
    for name, value in params.items():
        if value is None:
            continue
        if name in _SAMPLING:
            setattr(req.sampling, name, value)
        elif name in _STOPPING:
            if name in ("stop", "stop_token_ids"):
                getattr(req.stopping, name).extend([value] if isinstance(value, str) else value)
            else:
                setattr(req.stopping, name, value)
        elif name == "logprobs":
            req.logprobs.logprobs = bool(value)
        elif name == "top_logprobs":
            req.logprobs.top_logprobs = value
        elif name in _TOP:
            setattr(req, name, value)
        else:
            raise TypeError(f"unknown generation parameter {name!r}")
    return req
