"""Reading a state dict from disk without letting the file run code."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from mattekit.errors import RefusedFileError
from mattekit.weights.refusals import first_line, refuse

# Official releases wrap the state dict under one of these keys, or not at all.
_WRAPPER_KEYS = ("model", "state_dict", "module")
# Every mattekit family keeps its network in ``self.model`` (losses and metrics hold no weights).
_FAMILY_NETWORK_PREFIX = "model."


def read_weights_only(path: Path) -> object:
    """``torch.load(path, weights_only=True)``, memory-mapped (multi-GB files stay on disk).

    Raises:
        RefusedFileError naming the file and, in one line, why it is not a weights-only PyTorch
        file (:func:`~mattekit.weights.refusals.refusal_reason`); OSError when it cannot be
        opened.
    """
    try:
        with warnings.catch_warnings():
            # A refused pickle of another protocol would add torch's warning to the refusal.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                # Files in torch's legacy (pre-zip) format cannot be memory-mapped.
                return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # a missing or unreadable file, not a refused one
    except Exception as error:  # pickle, zip and unsafe-global errors all mean "not loadable"
        # Not chained: torch's message advises loading with weights_only=False.
        raise refuse(path, error) from None


def map_prefixes(state: Mapping[str, Tensor], prefixes: Mapping[str, str]) -> dict[str, Tensor]:
    """Entries under each source prefix, renamed to the target prefix; the others dropped.

    ``{"model.": ""}`` gives a mattekit family's network from its Lightning ``state_dict``.
    """
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        for source, target in prefixes.items():
            if key.startswith(source):
                mapped[target + key[len(source) :]] = value
                break
    return mapped


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a ``.pth`` / ``.pt`` / ``.ckpt`` (weights only) or ``.safetensors`` file.

    Pickled checkpoints are read with ``torch.load(weights_only=True)``: a downloaded file cannot
    execute code. A state dict wrapped in ``{"model": ...}`` (or ``state_dict`` / ``module``) is
    unwrapped. A Lightning checkpoint of a mattekit family gives its network's state dict (the
    family's ``model.`` prefix removed), so a network trained here initialises another run the
    way an official checkpoint does.

    Raises:
        FileNotFoundError / ValueError naming the file (a :class:`RefusedFileError` when it is not
        a weights-only PyTorch or a safetensors file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own (Rust) error type
            reason = f"not a safetensors file ({first_line(error)})"
            raise RefusedFileError(f"{path}: {reason}") from None
    state = read_weights_only(path)
    if isinstance(state, dict) and "pytorch-lightning_version" in state:
        state = _family_network(state.get("state_dict"), path)
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return state


def _family_network(state: object, path: Path) -> dict[str, Tensor]:
    """The ``model.`` entries of a Lightning checkpoint's state dict, prefix removed."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: a Lightning checkpoint without a state_dict")
    prefix = _FAMILY_NETWORK_PREFIX
    network = map_prefixes(state, {prefix: ""})
    if not network:
        raise ValueError(
            f"{path}: a Lightning checkpoint with no '{prefix}' weights (not a mattekit family's)"
        )
    return network
