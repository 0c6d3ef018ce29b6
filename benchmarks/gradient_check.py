"""The per-step check that every gradient is finite (issue 27: no host sync per step, one fused
check): mattekit's multi-tensor check against the earlier one tensor at a time.

    python benchmarks/gradient_check.py                  # ZIM's paper-size parameters, CPU
    python benchmarks/gradient_check.py --family sama --runs 21
    python benchmarks/gradient_check.py --device cuda    # on a GPU

The family's paper-size parameters get random gradients (fp32). Reported per check: the aten
operations it dispatches (counted with a dispatch mode: on a GPU each is at least one kernel
launch, and the earlier check's count grows with the number of tensors), and its time, median
of ``--runs`` alternating pairs (``timing.paired``). Each check's host sync is its one
``bool()`` at the end, as in training.
"""

from __future__ import annotations

import argparse
import sys

import torch
from timing import paired
from torch.utils._python_dispatch import TorchDispatchMode

from mattekit.models.nonfinite import gradients_finite


def per_tensor(parameters) -> torch.Tensor:
    """The check before issue 27: two operations per gradient, then a stack."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.stack([torch.isfinite(g).all() for g in grads]).all()


class CountOperations(TorchDispatchMode):
    """Counts the aten operations dispatched inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def operations(check, parameters) -> int:
    with CountOperations() as counter:
        check(parameters)
    return counter.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="zim")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args(argv)
    from mattekit.models.registry import get_model_entry

    entry = get_model_entry(args.family)
    torch.manual_seed(0)
    module = entry.cls(**entry.paper_size).to(args.device)
    parameters = [p for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    assert bool(per_tensor(parameters)) and bool(gradients_finite(parameters))
    checks = {"per_tensor": per_tensor, "fused": gradients_finite}
    counts = {name: operations(check, parameters) for name, check in checks.items()}
    old_ms, new_ms, ratio = paired(
        lambda: bool(per_tensor(parameters)),
        lambda: bool(gradients_finite(parameters)),
        args.runs,
        args.device,
    )
    size = sum(p.numel() for p in parameters) / 1e6
    print(f"{args.family}: {len(parameters)} gradient tensors, {size:.1f} M values, {args.device}")
    print("| check | aten operations | time (ms) |")
    print("| --- | ---: | ---: |")
    print(f"| one tensor at a time (before) | {counts['per_tensor']} | {old_ms:.1f} |")
    print(f"| multi-tensor (now) | {counts['fused']} | {new_ms:.1f} |")
    print(f"| now / before (median of {args.runs} paired runs) | | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
