"""CLIP token ids from text with OpenCLIP's tokenizer, whose vocabulary ships in the package.

Shared by the families that run a CLIP text encoder: TeachDiffusionMatting's OpenCLIP tower and
SDMatte's Stable Diffusion 2 encoder (SD 2's tokenizer uses OpenCLIP's vocabulary, start and
end tokens 49406 / 49407, padding id 0).
"""

from __future__ import annotations

from open_clip.tokenizer import SimpleTokenizer
from torch import Tensor


class PromptTokenizer:
    """Text -> B x ``length`` token ids with open_clip's tokenizer (its BPE vocabulary ships in
    the package: nothing is downloaded). Longer prompts are cut, keeping the end token; shorter
    ones are padded with id 0.

    Args:
        length: ids per text (CLIP's context is 77).
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self._tokenizer = SimpleTokenizer(context_length=length)

    def __call__(self, texts: list[str]) -> Tensor:
        return self._tokenizer(list(texts))
