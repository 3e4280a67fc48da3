from __future__ import annotations

import pytest

from gateway.backends.text import CumulativeText, DeltaText

TEXT = "Grüße aus 東京 😀 and then stop here, never shown"


def splits(data: bytes) -> list[list[bytes]]:
    """Every way of cutting `data` into two pieces, plus byte-by-byte."""
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [[bytes([b]) for b in data]]


@pytest.mark.parametrize("pieces", splits(TEXT.encode()))
def test_delta_text_joins_characters_split_across_responses(pieces: list[bytes]) -> None:
    assembler = DeltaText()
    joined = "".join(assembler.feed(piece) for piece in pieces) + assembler.flush()
    assert joined == TEXT


def test_cumulative_text_holds_back_an_unfinished_character() -> None:
    assembler = CumulativeText()
    assert assembler.feed(b"Hi ") == "Hi "
    assert assembler.feed("Hi \ufffd".encode()) == ""  # first bytes of a character
    assert assembler.feed("Hi \ufffd\ufffd".encode()) == ""
    assert assembler.feed("Hi 東".encode()) == "東"
    assert assembler.feed("Hi 東".encode()) == ""  # a repeat adds nothing
    assert assembler.feed("Hi 東\ufffd".encode()) == ""
    assert assembler.flush() == "\ufffd"  # never completed: shown as the backend sent it
