"""Every flavour the gateway recognises, in detection order (the first that recognises a
model's configuration wins). A new flavour is its adapter module plus one entry here."""

from __future__ import annotations

from gateway.backends import generic, trtllm, vllm
from gateway.model_info import Flavour

FLAVOURS: tuple[Flavour, ...] = (vllm.VLLM, *trtllm.FLAVOURS, generic.PLAIN_TEXT)
