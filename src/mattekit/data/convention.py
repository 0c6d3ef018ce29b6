"""``InputConvention``: how a family's network sees a photo, as one object.

A family owns its convention (after anomalib's pre-processor): the square side it runs at, how a
photo is fitted to it, and what its network does to the pixels (normalisation, the value of the
letterbox padding). Every path that feeds the network uses the same object: the DataModule's
evaluation splits (``fit``'s validation, ``validate``, ``test``, ``predict``), ``matte``, the demo,
``benchmark`` and ``export``, whose ``export.json`` records it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

Resize = Literal["stretch", "letterbox"]


@dataclass(frozen=True)
class InputConvention:
    """How photos become network inputs, and alphas come back.

    Attributes:
        side: the square input side; None where the family has none of its own (the run's
            evaluation size is used).
        resize: ``stretch`` (to side x side, aspect not kept) or ``letterbox`` (longest side to
            ``side``, antialiased bilinear, padded at the bottom-right); None where the family
            has no preference (``stretch`` unless the run says otherwise).
        mean, std: the normalisation the network applies to RGB in [0, 1] (batches carry
            [0, 1]; the network normalises): ``(x - mean) / std``.
        pad_value: the letterbox padding as the network sees it, after normalisation (SAM's
            release pads 0 in normalised space).
    """

    side: int | None = None
    resize: Resize | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if self.resize not in (None, "stretch", "letterbox"):
            raise ValueError(f"resize must be 'stretch' or 'letterbox', got {self.resize!r}")
        if self.side is not None and self.side < 1:
            raise ValueError(f"side must be positive, got {self.side}")

    def resolved(
        self,
        side: int | None,
        resize: str | None,
        family: str,
        flags: tuple[str, str] = ("image_size", "resize"),
        fallback: tuple[int | None, str | None] = (None, None),
    ) -> InputConvention:
        """This convention with what it leaves open filled in: the given ``side`` / ``resize``
        (explicit settings), else ``fallback`` (a run's data settings), else ``stretch``.

        Raises:
            ValueError naming the flag, when an explicit setting contradicts the family's own
            convention (the same checkpoint would be scored on another input than it serves).
        """
        for flag, given, own in ((flags[0], side, self.side), (flags[1], resize, self.resize)):
            if given is not None and own is not None and given != own:
                raise ValueError(
                    f"--{flag} {given} contradicts {family}'s input convention "
                    f"({self.describe()}); leave it out"
                )
        return replace(
            self,
            side=self.side or side or fallback[0],
            resize=self.resize or resize or fallback[1] or "stretch",
        )

    def describe(self) -> str:
        """``"128 px letterbox"``, for errors and tables."""
        side = f"{self.side} px" if self.side else "the run's side"
        return f"{side} {self.resize or 'stretch'}"

    def record(self) -> dict:
        """The convention as records and ``export.json`` hold it."""
        return asdict(self)
