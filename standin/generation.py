"""Token-by-token generation shared by the stand-ins: EOS, max_tokens, stop strings and
stop token ids as vLLM (and the TensorRT-LLM LLM API) apply them."""

from __future__ import annotations

from typing import Any

from standin.text import StandInTokenizer, reply_token


class Generation:
    """Token-by-token state of one sequence: ids, decoded text, stop handling."""

    def __init__(
        self, tokenizer: StandInTokenizer, prompt_ids: list[int], reply: str, params: Any, max_model_len: int
    ) -> None:
        self.tokenizer = tokenizer
        self.params = params
        self.reply_ids = tokenizer.encode_reply(reply) or [tokenizer.eos_id]
        self.token_ids: list[int] = []
        self.text_ids: list[int] = []  # tokens that contribute text (not EOS / stop ids)
        self.text = ""
        self.finish_reason: str | None = None
        self.stop_at: int | None = None  # character index where a stop string cut the text
        self.logprob_values: list[float] = []
        self.cumulative_logprob = 0.0
        self.stop_hold = max((len(s) for s in params.stop), default=1) - 1
        self.room = max_model_len - len(prompt_ids)  # tokens left in the context window

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def step(self) -> None:
        position = len(self.token_ids)
        eos_allowed = not self.params.ignore_eos and position >= self.params.min_tokens
        token = reply_token(self.reply_ids, position, eos_allowed, self.tokenizer.eos_id, self.tokenizer.space_id)
        self.token_ids.append(token)
        logprob = -0.05 * (1 + len(self.token_ids) % 7)
        self.logprob_values.append(logprob)
        self.cumulative_logprob += logprob
        if token == self.tokenizer.eos_id and not self.params.ignore_eos:
            self.finish_reason = "stop"
            return
        if token in self.params.stop_token_ids:
            self.finish_reason = "stop"
            return
        self.text_ids.append(token)
        self.text = self.tokenizer.decode(self.text_ids)
        for stop in self.params.stop:
            index = self.text.find(stop, max(0, len(self.text) - len(stop) - 16))
            if stop and index != -1:
                self.stop_at = index + (len(stop) if self.params.include_stop_str_in_output else 0)
                self.finish_reason = "stop"
                return
        if len(self.token_ids) >= min(self.params.max_tokens, self.room):
            self.finish_reason = "length"

    def visible_text(self) -> str:
        """Text safe to show: cut at a stop string; while running, hold back what could
        still become a stop string or an incomplete multi-byte character."""
        if self.stop_at is not None:
            return self.text[: self.stop_at]
        text = self.text
        if self.finished:
            return text
        if text.endswith("\ufffd"):
            text = text.rstrip("\ufffd")
        if self.stop_hold and not self.params.include_stop_str_in_output:
            text = text[: max(0, len(text) - self.stop_hold)]
        return text

    def logprob_entries(self, count: int) -> list[dict[str, Any]] | None:
        if self.params.logprobs is None:
            return None
        entries = []
        for token_id, logprob in zip(self.token_ids[-count:], self.logprob_values[-count:]):
            entry = {
                str(token_id): {
                    "logprob": logprob,
                    "rank": 1,
                    "decoded_token": self.tokenizer.decode([token_id]),
                }
            }
            for rank in range(2, self.params.logprobs + 2):
                alternative = (token_id + rank) % self.tokenizer.vocab_size()
                entry.setdefault(
                    str(alternative),
                    {
                        "logprob": logprob - rank,
                        "rank": rank,
                        "decoded_token": self.tokenizer.decode([alternative]),
                    },
                )
            entries.append(entry)
        return entries
