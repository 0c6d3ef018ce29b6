"""The global random states a training step draws from, saved in checkpoints as tensors and ints
(so a weights-only load reads them) and restored right before the first step of a resumed run."""

from __future__ import annotations

import random

import numpy as np
import torch

KEY = "mattekit_rng_states"


def capture() -> dict:
    """torch's (CPU and every CUDA device), NumPy's and Python's global RNG states."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, words, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "words": list(words), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    """Set the global RNGs to ``state`` (from :func:`capture`)."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (saved["kind"], keys, saved["position"], saved["has_gauss"], saved["cached"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["words"]), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
