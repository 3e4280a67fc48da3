"""The models Triton serves, as the gateway sees them: discovered with RepositoryIndex and
ModelConfig, classified by flavour, refreshed on an interval and on an unknown name."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from tritonclient.grpc import model_config_pb2 as mc

from gateway.errors import APIError, BackendUnavailable, ModelNotFound
from gateway.model_info import BackendFamily, Flavour, ModelInfo, ModelSignature, TensorSpec, detect_flavour
from gateway.triton.client import TritonClient

log = logging.getLogger(__name__)

# Config data types by number, under their KServe names (TYPE_STRING travels as BYTES).
_DATATYPES = {
    value: "BYTES" if name == "TYPE_STRING" else name.removeprefix("TYPE_") for name, value in mc.DataType.items()
}


def model_info_from_config(
    config: mc.ModelConfig, version: str, flavours: Sequence[Flavour], override: BackendFamily | None = None
) -> tuple[ModelInfo | None, Flavour | None]:
    """Build a ModelInfo from a ModelConfig; (None, flavour) for a model that is no chat model
    (flavour None) or whose flavour is recognised but not served."""
    inputs = {
        spec.name: TensorSpec(
            name=spec.name,
            datatype=_DATATYPES.get(spec.data_type, "BYTES"),
            dims=tuple(spec.dims),
            optional=spec.optional,
        )
        for spec in config.input
    }
    outputs = frozenset(output.name for output in config.output)
    steps = tuple((step.model_name, dict(step.input_map)) for step in config.ensemble_scheduling.step)
    signature = ModelSignature(config.backend, config.platform, frozenset(inputs), outputs, steps)
    flavour = detect_flavour(signature, flavours, override)
    if flavour is None or flavour.adapter is None:
        return None, flavour
    info = ModelInfo(
        name=config.name,
        version=version,
        flavour=flavour,
        backend=config.backend,
        platform=config.platform,
        max_batch_size=config.max_batch_size,
        decoupled=config.model_transaction_policy.decoupled,
        inputs=inputs,
        outputs=outputs,
        parameters={key: value.string_value for key, value in config.parameters.items()},
        adds_special_tokens=flavour.adds_special_tokens,
        tokenizing_model=flavour.tokenizing_model(signature),
    )
    return info, flavour


def adds_special_tokens(parameters: Mapping[str, str] | None) -> bool:
    """`preprocessing`'s `add_special_tokens` parameter as the real model reads it: true unless
    it holds one of the false spellings (unset, unfilled `${...}` or unreadable values mean true)."""
    value = (parameters or {}).get("add_special_tokens", "").strip().lower()
    return value not in ("false", "0", "f", "n", "no")


class ModelRegistry:
    """Servable models by name. Reads are plain dict look-ups; refreshes swap the dict."""

    def __init__(
        self,
        client: TritonClient,
        *,
        flavours: Sequence[Flavour],
        backend_override: BackendFamily | None = None,
        refresh_interval: float = 5.0,
        min_refresh_gap: float = 1.0,
    ) -> None:
        self._client = client
        self._flavours = flavours
        self._override = backend_override
        self._refresh_interval = refresh_interval
        self._min_refresh_gap = min_refresh_gap
        self._models: dict[str, ModelInfo] = {}
        self._not_served: dict[str, str] = {}  # name -> why it is not offered
        self._parameters: dict[str, tuple[str, Mapping[str, str]]] = {}  # name -> (version, parameters)
        self._last_refresh = 0.0
        self._last_failure: str | None = None  # message of the last failed refresh
        self._refresh_lock = asyncio.Lock()
        self.loaded_once = False

    @property
    def models(self) -> list[ModelInfo]:
        return sorted(self._models.values(), key=lambda info: info.name)

    def get(self, name: str) -> ModelInfo | None:
        return self._models.get(name)

    async def resolve(self, name: str) -> ModelInfo:
        """The model called `name`; an unknown name triggers one (rate-limited) refresh."""
        info = self._models.get(name)
        if info is not None:
            return info
        await self.refresh(max_age=self._min_refresh_gap)  # raises BackendUnavailable while Triton is away
        info = self._models.get(name)
        if info is not None:
            return info
        reason = self._not_served.get(name)
        if reason is not None:
            raise NotServable(name, reason)
        raise ModelNotFound(name)

    async def refresh(self, max_age: float = 0.0) -> None:
        """Re-read Triton's repository unless that was done less than `max_age` seconds
        ago (so a burst of unknown names costs one refresh); raises BackendUnavailable
        when Triton is away."""
        async with self._refresh_lock:
            if time.monotonic() - self._last_refresh < max_age:
                if self._last_failure is not None:
                    raise BackendUnavailable(self._last_failure)
                return
            self._last_refresh = time.monotonic()
            try:
                index = await self._client.repository_index()
            except APIError as exc:
                self._last_failure = exc.message
                raise
            self._last_failure = None
            ready: dict[str, str] = {}
            for entry in index:
                if entry.state == "READY" and _version_key(entry.version) >= _version_key(ready.get(entry.name, "")):
                    ready[entry.name] = entry.version
            models: dict[str, ModelInfo] = {}
            not_served: dict[str, str] = {}
            parameters: dict[str, Mapping[str, str]] = {}
            for name, version in ready.items():
                known = self._models.get(name)
                if known is not None and known.version == version:
                    models[name] = known
                    continue
                cached = self._parameters.get(name)
                if name in self._not_served and self._not_served[name].startswith(f"v{version}:") and cached:
                    not_served[name] = self._not_served[name]
                    parameters[name] = cached[1]
                    continue
                config = await self._client.model_config(name, version)
                parameters[name] = {key: value.string_value for key, value in config.parameters.items()}
                info, flavour = model_info_from_config(config, version, self._flavours, self._override)
                if info is not None:
                    models[name] = info
                else:
                    not_served[name] = f"v{version}: {_not_served_reason(flavour)}"
            for name, info in models.items():
                parameters.setdefault(name, info.parameters)
                if info.tokenizing_model is not None:
                    adds = adds_special_tokens(parameters.get(info.tokenizing_model))
                    if adds != info.adds_special_tokens:
                        models[name] = replace(info, adds_special_tokens=adds)
            self._parameters = {name: (ready[name], params) for name, params in parameters.items()}
            changed = models.keys() != self._models.keys()
            self._models = models
            self._not_served = not_served
            if changed or not self.loaded_once:
                log.info("Models on Triton:\n%s", self.table())
            self.loaded_once = True

    async def run(self) -> None:
        """Refresh forever (cancel to stop); failures are logged and retried."""
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except APIError as exc:
                log.debug("model refresh failed: %s", exc.message)
            except Exception:  # keep the loop alive whatever Triton sends back
                log.exception("model refresh failed")

    def table(self) -> str:
        """The model table printed at start-up: served models and the others."""
        rows = [(info.name, info.version, info.flavour.name, "served") for info in self.models]
        for name in sorted(self._not_served):
            version, _, why = self._not_served[name].partition(": ")
            rows.append((name, version.removeprefix("v"), "-", f"not served ({why.partition(';')[0]})"))
        header = ("Model", "Version", "Flavour", "Status")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = [line, _row(header, widths), line]
        out += [_row(row, widths) for row in rows] or [_row(("(none)", "", "", ""), widths)]
        out.append(line)
        return "\n".join(out)


class NotServable(APIError):
    """The model exists on Triton but is not a model this gateway serves."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "model_not_supported"

    def __init__(self, name: str, reason: str) -> None:
        why = reason.partition(": ")[2]
        super().__init__(f"The model '{name}' exists on Triton but cannot be used here: it is {why}.", param="model")


def _not_served_reason(flavour: Flavour | None) -> str:
    return flavour.not_served if flavour is not None else "not a text-generation model"


def _version_key(version: str) -> int:
    return int(version) if version.isdigit() else -1


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"
