"""Whether a network may pick a faster path by looking at its inputs' values.

Some attention layers skip their masks when every sample's prompt makes them no-ops (no filler
tokens, every prompt a box). That choice reads tensor values, which a structure check on the
meta device does not have and a traced or exported graph would freeze: the exported network
would then be right only for inputs like the example. Both take the general path.
"""

from __future__ import annotations

import torch
from torch import Tensor


def may_branch_on_values(tensor: Tensor) -> bool:
    """True when ``tensor``'s values may decide a branch: it has values (not meta) and no
    graph is being traced, exported or compiled."""
    if tensor.device.type == "meta" or torch.jit.is_tracing():
        return False
    return not torch.compiler.is_compiling()
