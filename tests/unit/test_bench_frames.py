"""The bench's streaming client counts token frames however the body is cut into reads."""

from __future__ import annotations

import json

from tests.benchmarks.bare import chunk_prefix, token_frame
from tests.benchmarks.stream_client import ChunkedBody, TokenFrames

TOKEN = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
ROLE = b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
ERROR = b'data: {"error":{"message":"boom"}}\n\n'
BODY = ROLE + TOKEN * 3 + b'data: {"id":"c","choices":[],"usage":{}}\n\n' + b"data: [DONE]\n\n"


def test_every_cut_of_the_body_counts_the_same_tokens() -> None:
    for cut in range(len(BODY) + 1):
        frames = TokenFrames()
        assert frames.feed(BODY[:cut]) + frames.feed(BODY[cut:]) == 3
        assert frames.error is None


def test_byte_by_byte_and_the_first_error_kept() -> None:
    frames = TokenFrames()
    body = TOKEN + ERROR + ERROR.replace(b"boom", b"later")
    assert sum(frames.feed(body[at : at + 1]) for at in range(len(body))) == 1
    assert frames.error is not None and "boom" in frames.error


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def test_a_chunked_body_cut_anywhere_gives_its_tokens_and_its_end() -> None:
    """The gateway writes one chunk per delta; a read may end anywhere, in a size line too."""
    body = chunked(ROLE, TOKEN, TOKEN + TOKEN, b'data: {"id":"c","choices":[]}\n\n', b"data: [DONE]\n\n")
    for cut in range(len(body) + 1):
        reader = ChunkedBody(TokenFrames())
        tokens = reader.feed(body[:cut])
        assert not reader.done or cut == len(body)
        assert tokens + reader.feed(body[cut:]) == 3 and reader.done


def test_a_chunk_size_with_an_extension_and_nothing_after_the_last_chunk() -> None:
    reader = ChunkedBody(TokenFrames())
    body = b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(TOKEN), TOKEN)
    assert sum(reader.feed(body[at : at + 1]) for at in range(len(body))) == 1 and reader.done


def test_the_bare_servers_frames_are_chat_chunks_the_client_counts() -> None:
    frame = token_frame(chunk_prefix("bench_0ms"), 'a "quoted" token')
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    chunk = json.loads(frame[len(b"data: ") :])
    assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == "bench_0ms"
    assert chunk["choices"] == [{"index": 0, "delta": {"content": 'a "quoted" token'}, "finish_reason": None}]
    assert TokenFrames().feed(frame * 2) == 2
