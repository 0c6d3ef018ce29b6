"""What loading a checkpoint into a module did, in one loggable line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """What a checkpoint filled: loaded keys, new modules left at init, checkpoint keys unused."""

    loaded: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.loaded)} tensors loaded; left at init: {_modules(self.left_at_init)}; "
            f"unused: {_modules(self.unused)}"
        )


def _modules(keys: list[str]) -> list[str]:
    """Parameter names folded to their module (three name levels), for a readable report."""
    return sorted({".".join(key.split(".")[:3]) for key in keys})
