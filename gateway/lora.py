"""LoRA adapters, selected through the model name `<base><separator><adapter>`.

The gateway does not share Triton's disk, so it learns the adapters from a local or mounted
view of Triton's model repository (each model's `multi_lora.json`, next to its `model.json`)
and/or from `--lora-modules BASE:NAME=PATH` entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.model_files import read_json_object


class LoraCatalog:
    def __init__(self, separator: str | None, repository: Path | None, modules: Sequence[str]) -> None:
        self.separator = separator
        self._repository = repository
        self._explicit: dict[str, dict[str, str]] = {}
        for spec in modules:
            base, _, rest = spec.partition(":")
            name, _, path = rest.partition("=")
            if not (base and name):
                raise ValueError(f"--lora-modules {spec!r}: expected BASE:NAME=PATH")
            self._explicit.setdefault(base, {})[name] = path

    @property
    def enabled(self) -> bool:
        return bool(self.separator)

    def adapters(self, base: str, version: str) -> dict[str, str]:
        """Adapter name -> path for a base model: its multi_lora.json, then the explicit ones."""
        found: dict[str, str] = {}
        if self._repository is not None:
            found.update(_read_multi_lora(self._repository / base / version / "multi_lora.json"))
        found.update(self._explicit.get(base, {}))
        return found

    def split(self, name: str) -> list[tuple[str, str]]:
        """Every way of reading `name` as (base, adapter), the longest base first."""
        if not self.separator or self.separator not in name:
            return []
        cuts = []
        start = 0
        while (index := name.find(self.separator, start)) != -1:
            cuts.append((name[:index], name[index + len(self.separator) :]))
            start = index + 1
        return sorted(cuts, key=lambda cut: len(cut[0]), reverse=True)


def _read_multi_lora(path: Path) -> dict[str, str]:
    return {str(name): str(location) for name, location in read_json_object(path).items()}
