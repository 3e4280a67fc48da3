"""Pairing re-tokenized text with per-token logprob values (TensorRT-LLM's output_log_probs)."""

from __future__ import annotations

import re

import pytest

from gateway.backends.alignment import LogprobAligner, cut_at, pair_tokens
from gateway.chat.template import ModelTokenizer
from gateway.generation import TokenLogprob
from tests.conftest import TOKENIZER_DIR


def words(text: str) -> list[str]:
    """One token per word, its leading spaces included (like byte-level BPE)."""
    return re.findall(r"\s*\S+|\s+", text)


def stream(aligner: LogprobAligner, parts: list[tuple[str, list[float]]]) -> list[tuple[str, list[TokenLogprob]]]:
    """Feed (text, values) parts, the last one ending the request."""
    return [aligner.feed(text, values, end=i == len(parts) - 1) for i, (text, values) in enumerate(parts)]


def test_cut_at_token_starts_covers_the_text() -> None:
    assert cut_at("You said", [0, 1, 3]) == ["Y", "ou", " said"]
    # Three byte-level tokens of one character: the one that completes it carries it.
    assert cut_at(" 東x", [0, 1, 1, 1, 2]) == [" ", "", "", "東", "x"]
    # A first offset past 0 (a leading space the tokenizer left out), and offsets running back.
    assert cut_at(" ab", [1, 2, 1]) == [" a", "", "b"]
    assert cut_at("ab", [0, 5]) == ["ab", ""]


def test_pair_tokens_pairs_the_first_of_each() -> None:
    assert pair_tokens(["a", "b"], [-1.0, -2.0, -3.0]) == [TokenLogprob("a", -1.0), TokenLogprob("b", -2.0)]
    assert pair_tokens(["a", "b"], [-1.0]) == [TokenLogprob("a", -1.0)]
    assert pair_tokens(["a"], [-0.5], with_top=True) == [TokenLogprob("a", -0.5, (("a", -0.5),))]


def test_whole_text_drops_the_end_tokens_value() -> None:
    aligner = LogprobAligner(words)
    text, tokens = aligner.feed("You said hi", [-1.0, -2.0, -3.0, -0.5], end=True)  # the last: the end token
    assert text == "You said hi"
    assert tokens == [TokenLogprob("You", -1.0), TokenLogprob(" said", -2.0), TokenLogprob(" hi", -3.0)]


def test_text_beyond_the_values_is_sent_without_entries() -> None:
    text, tokens = LogprobAligner(words).feed("one two three", [-1.0, -2.0], end=True)
    assert text == "one two three"
    assert [token.token for token in tokens] == ["one", " two"]


def test_a_stop_string_cut_inside_a_token_keeps_that_tokens_value() -> None:
    # The model generated "Hello", " there", "!" ; the stop string "there" left "Hello ".
    text, tokens = LogprobAligner(words).feed("Hello ", [-1.0, -2.0, -3.0], end=True)
    assert text == "Hello "
    assert tokens == [TokenLogprob("Hello", -1.0), TokenLogprob(" ", -2.0)]


@pytest.mark.parametrize(
    ("parts", "texts"),
    [
        # One token per response: each chunk is one token behind, the end sends the rest.
        ([("You", [-1.0]), (" said", [-2.0]), (" hi", [-3.0]), ("", [])], ["", "You", " said", " hi"]),
        # The model's tokens "said" and ":" are one token to this tokenizer: paired by position.
        ([("You", [-1.0]), (" said", [-2.0]), (":", [-3.0]), (" hi", [-4.0])], ["", "You", "", " said: hi"]),
    ],
)
def test_streamed_chunks_carry_exactly_their_tokens_and_match_the_whole_text(
    parts: list[tuple[str, list[float]]], texts: list[str]
) -> None:
    sent = stream(LogprobAligner(words), parts)
    assert [text for text, _ in sent] == texts
    for text, tokens in sent:
        assert "".join(token.token for token in tokens) == text
    streamed = [token for _, tokens in sent for token in tokens]
    whole_text = "".join(text for text, _ in parts)
    _, whole = LogprobAligner(words).feed(whole_text, [v for _, values in parts for v in values], end=True)
    assert streamed == whole
    assert [token.logprob for token in whole] == [-1.0, -2.0, -3.0]


def test_text_split_inside_a_token_waits_for_the_rest() -> None:
    # Text can arrive in pieces that are not tokens (e.g. held back by a stop-string filter).
    sent = stream(LogprobAligner(words), [("He", [-1.0]), ("llo wo", [-2.0]), ("rld", []), ("", [])])
    assert sent[0] == ("", [])
    assert sent[1] == ("Hello", [TokenLogprob("Hello", -1.0)])
    assert sent[2] == ("", [])
    assert sent[3] == (" world", [TokenLogprob(" world", -2.0)])


def test_a_token_waits_for_its_value() -> None:
    aligner = LogprobAligner(words)
    assert aligner.feed("a b c", [-1.0], end=False) == ("a", [TokenLogprob("a", -1.0)])
    assert aligner.feed("", [-2.0, -3.0], end=False) == (" b", [TokenLogprob(" b", -2.0)])
    assert aligner.feed("", [], end=True) == (" c", [TokenLogprob(" c", -3.0)])


def test_with_top_lists_the_sampled_token_as_its_only_alternative() -> None:
    _, tokens = LogprobAligner(words, with_top=True).feed("a b", [-1.0, -2.0], end=True)
    assert [token.top for token in tokens] == [(("a", -1.0),), ((" b", -2.0),)]


@pytest.mark.parametrize("text", ["You said: Hello there", " 한국어 Ωß ñ 😀", '{"city": "Paris", "days": 1}', ""])
def test_the_model_tokenizer_splits_text_into_one_piece_per_token(tokenizer, text: str) -> None:  # type: ignore[no-untyped-def]
    pieces = ModelTokenizer(tokenizer).token_pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) == len(tokenizer.encode(text, add_special_tokens=False))


def test_a_tokenizer_without_offsets_is_split_by_decoding() -> None:
    from transformers import AutoTokenizer

    class WithoutOffsets:
        """A tokenizer that cannot report offsets (a slow one)."""

        is_fast = False

        def __init__(self) -> None:
            self._inner = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))

        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            return list(self._inner.encode(text, add_special_tokens=add_special_tokens))

        def decode(self, ids: list[int]) -> str:
            return str(self._inner.decode(ids))

    assert ModelTokenizer(WithoutOffsets()).token_pieces("You said: Hello") == ["Y", "ou", " said", ":", " Hello"]
