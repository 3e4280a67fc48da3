"""Tokenizers and chat templates, one per model, loaded once and cached.

`--tokenizer DIR_OR_ID` sets the tokenizer for every model; `--tokenizer MODEL=DIR_OR_ID`
sets it for one model. `--chat-template FILE` replaces the tokenizer's own template.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.backends.alignment import cut_at
from gateway.chat.integrity import ControlTokens
from gateway.errors import APIError, InvalidRequest, StartupError
from gateway.generation import TokenizerTools

log = logging.getLogger(__name__)


class TokenizerUnavailable(APIError):
    status = 500
    default_code = "tokenizer_unavailable"


INLINE_RENDER_LIMIT = 64  # messages + tools rendered on the event loop (about 0.1 ms)


class TokenizerStore:
    """Chat prompt rendering and token counting for each model."""

    def __init__(self, specs: Sequence[str], chat_template: Path | None = None) -> None:
        self._default: str | None = None
        self._per_model: dict[str, str] = {}
        for spec in specs:
            model, sep, source = spec.partition("=")
            if sep and model and not os.path.exists(spec):
                self._per_model[model] = source
            else:
                self._default = spec
        self._template = chat_template.read_text() if chat_template else None
        self._loaded: dict[str, Any] = {}
        self._self_added_bos: dict[str, tuple[str, int] | None] = {}  # source -> (BOS text, id)
        self._control_tokens: dict[str, ControlTokens] = {}  # by source, like _loaded

    @property
    def sources(self) -> list[str]:
        return [s for s in [self._default, *self._per_model.values()] if s]

    def source_for(self, model: str) -> str | None:
        return self._per_model.get(model, self._default)

    async def preload(self) -> None:
        """Load every configured tokenizer (off the event loop), failing loudly if one
        cannot be loaded: a typo should stop the gateway at start, not at first request."""
        for source in self.sources:
            if source not in self._loaded:
                try:
                    tokenizer = self._loaded[source] = await asyncio.to_thread(self._load, source)
                except Exception as exc:  # noqa: BLE001 - whatever the loader says, the gateway cannot start
                    raise StartupError(_load_failure(source, exc)) from None
                self._control_tokens[source] = await asyncio.to_thread(ControlTokens.of, tokenizer)

    def _load(self, source: str) -> Any:
        """The tokenizer from a local directory or the local Hugging Face cache, else from the
        Hub, which is asked only once it answers at all (offline, the Hub's own retries would
        take most of a minute)."""
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except OSError:
            if os.path.isdir(source) or os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0"):
                raise
            _check_hub_reachable()
            tokenizer = AutoTokenizer.from_pretrained(source)
        if self._template is not None:
            tokenizer.chat_template = self._template
        log.info("Loaded tokenizer %s", source)
        return tokenizer

    def tokenizer(self, model: str) -> Any | None:
        source = self.source_for(model)
        if source is None:
            return None
        tokenizer = self._loaded.get(source)
        if tokenizer is None:
            try:
                tokenizer = self._loaded[source] = self._load(source)
            except Exception as exc:  # noqa: BLE001 - any loader failure means the same to the client
                raise TokenizerUnavailable(f"The tokenizer '{source}' could not be loaded: {exc}") from None
        return tokenizer

    def control_tokens(self, model: str) -> ControlTokens | None:
        """The special tokens of `model`'s tokenizer and their matcher (compiled once per
        tokenizer: a few ms for Llama 3's 256), or None without a tokenizer."""
        tokenizer = self.tokenizer(model)
        source = self.source_for(model)
        if tokenizer is None or source is None:
            return None
        tokens = self._control_tokens.get(source)
        if tokens is None:
            tokens = self._control_tokens[source] = ControlTokens.of(tokenizer)
        return tokens

    async def render_chat_async(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        generation: tuple[bool, bool] = (True, False),
        **template_kwargs: Any,
    ) -> str:
        """`render_chat`, in a worker thread for long conversations. Rendering costs about
        2 µs a message (plus the tools): inline it is cheaper than a thread hop, but a
        conversation of thousands of messages would stall every other stream."""
        if len(messages) + len(template_kwargs.get("tools") or ()) <= INLINE_RENDER_LIMIT:
            return self.render_chat(model, messages, generation=generation, **template_kwargs)
        return await asyncio.to_thread(self.render_chat, model, messages, generation=generation, **template_kwargs)

    def render_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        generation: tuple[bool, bool] = (True, False),
        **template_kwargs: Any,
    ) -> str:
        """The prompt for `messages`, with the generation prompt appended. `generation`:
        (add_generation_prompt, continue_final_message), as the template takes them."""
        tokenizer = self.tokenizer(model)
        if tokenizer is None:
            raise InvalidRequest(
                f"Chat completions need a tokenizer with a chat template for '{model}'; "
                "start the gateway with --tokenizer (or use /v1/completions).",
                param="model",
                code="chat_template_unavailable",
            )
        if tokenizer.chat_template is None:
            raise InvalidRequest(
                f"The tokenizer of '{model}' has no chat template; start the gateway with --chat-template.",
                param="model",
                code="chat_template_unavailable",
            )
        try:
            add_generation_prompt, continue_final_message = generation
            prompt = tokenizer.apply_chat_template(
                messages,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
                **template_kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - templates raise whatever their author chose
            raise InvalidRequest(f"The chat template rejected the messages: {exc}", param="messages") from None
        return str(prompt)

    def tools(self, model: str, adds_special_tokens: bool = False) -> TokenizerTools | None:
        """Token counting and prompt round trips for `model`, or None without a tokenizer.
        `adds_special_tokens`: whether the model's own tokenization of its text input adds
        them (see ModelInfo.adds_special_tokens)."""
        tokenizer = self.tokenizer(model)
        if tokenizer is None:
            return None
        source = self.source_for(model) or ""
        if source not in self._self_added_bos:
            self._self_added_bos[source] = self_added_bos(tokenizer)
        return ModelTokenizer(tokenizer, self._self_added_bos[source], adds_special_tokens)


HUB_PROBE_SECONDS = 3.0


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _check_hub_reachable() -> None:
    """Raise OSError unless the Hugging Face endpoint (HF_ENDPOINT) accepts a connection soon.
    Behind a proxy the Hub is reached through it, so there is nothing to probe directly."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return
    address = urlsplit(constants.ENDPOINT)
    port = address.port or (443 if address.scheme == "https" else 80)
    with socket.create_connection((address.hostname or "", port), timeout=HUB_PROBE_SECONDS):
        pass


def _load_failure(source: str, exc: Exception) -> str:
    """One line: which tokenizer, why, and what to do."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if os.path.isdir(source):
        fix = "check that the directory holds a tokenizer (tokenizer.json or tokenizer_config.json)"
    else:
        fix = (
            "give a local tokenizer directory, or a Hugging Face id the machine can download (HF_TOKEN for gated "
            "models; it is then cached for offline starts)"
        )
    return f"the tokenizer '{source}' could not be loaded ({reason[:200]}); {fix} (--tokenizer)"


def self_added_bos(tokenizer: Any) -> tuple[str, int] | None:
    """(BOS text, BOS id) when the tokenizer adds its BOS on every encode with special tokens
    (Llama 3's does), else None."""
    bos_id, bos_text = tokenizer.bos_token_id, tokenizer.bos_token
    if bos_id is None or not bos_text:
        return None
    with_special = tokenizer.encode("a", add_special_tokens=True)
    without = tokenizer.encode("a", add_special_tokens=False)
    return (str(bos_text), int(bos_id)) if with_special[:1] == [bos_id] and without[:1] != [bos_id] else None


class ModelTokenizer:
    """A Hugging Face tokenizer seen through the TokenizerTools interface."""

    __slots__ = ("_added_bos", "_adds_special", "_tokenizer")

    def __init__(self, tokenizer: Any, bos: tuple[str, int] | None = None, adds_special_tokens: bool = False) -> None:
        self._tokenizer = tokenizer
        self._adds_special = adds_special_tokens
        # The BOS the backend's own tokenization puts in front, if it does.
        self._added_bos = bos if adds_special_tokens else None

    def text_input(self, prompt: str) -> str:
        """A rendered chat prompt as the model's text input. A backend that tokenizes with
        special tokens added (the vLLM engine, TensorRT-LLM preprocessing by default) would add
        the BOS again that the template already wrote: the text goes without it, so the model
        gets one BOS, as vLLM's own server sends it (it tokenizes a rendered chat prompt
        without adding special tokens)."""
        if self._added_bos is not None and prompt.startswith(self._added_bos[0]):
            return prompt[len(self._added_bos[0]) :]
        return prompt

    def decode_prompt(self, token_ids: list[int]) -> str:
        """Token ids as the model's text input: a leading BOS id is left to such a backend's
        tokenization, which adds it again."""
        if self._added_bos is not None and token_ids[:1] == [self._added_bos[1]]:
            token_ids = token_ids[1:]
        return self.decode(token_ids)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def prompt_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=self._adds_special))

    def vocab_size(self) -> int:
        return len(self._tokenizer)

    def decode(self, token_ids: list[int]) -> str:
        return str(self._tokenizer.decode(token_ids, skip_special_tokens=False))

    def round_trip(self, text: str) -> str:
        ids = self._tokenizer.encode(text, add_special_tokens=False)
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))

    def token_pieces(self, text: str) -> list[str]:
        if not text:
            return []
        if getattr(self._tokenizer, "is_fast", False):
            encoding = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return cut_at(text, [start for start, _ in encoding["offset_mapping"]])
        # Without offsets: where each token starts in the text decoded one token longer each time.
        ids = self._tokenizer.encode(text, add_special_tokens=False)
        starts = [len(self._tokenizer.decode(ids[:count])) for count in range(len(ids))]
        return cut_at(text, starts)
