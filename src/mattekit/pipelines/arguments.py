"""Argument types shared by the argparse-based commands (``convert-labels``, ``matte``)."""

from __future__ import annotations

import argparse


def boolean(value: str) -> bool:
    """``true`` / ``false`` (also ``1`` / ``0``, ``yes`` / ``no``), as LightningCLI reads them."""
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
