"""Optimisation without Lightning: prefix checks, AdamW parameter groups, learning-rate schedules.

- :func:`check_prefixes`: a parameter-name prefix (``freeze``, ``lr_multipliers``) must name some
  parameter, so that a typo fails loudly instead of silently changing nothing.
- :func:`no_weight_decay_names` / :func:`norm_parameter_names` / :func:`parameter_groups`: what
  AdamW does not decay (timm's rule, or detectron2's: norm layers only), and the trainable
  parameters grouped by (learning-rate factor, decayed or not).
- :class:`LRSchedule`: the multiplier on the peak learning rate at each optimiser step (warm-up,
  then constant, cosine, exponential or poly, the last optionally with milestones).
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from torch import nn

NoDecayRule = Literal["timm", "norms"]
ScheduleOrigin = Literal["warmup_end", "start"]

# Position embeddings and learned tokens are additive offsets, not weights that scale an input:
# pulling them towards 0 erases what they encode (timm excludes them the same way). Matched
# against a parameter's own attribute name (``pos_embed`` in ``image_encoder.pos_embed``).
NO_DECAY_PARAMETER_PATTERNS = (
    "*pos_embed*",  # pos_embed, pos_embed_abs / _win (Hiera), absolute_pos_embed (Swin)
    "rel_pos_*",  # SAM ViT: rel_pos_h, rel_pos_w
    "relative_position_bias_table",  # Swin
    "*_token",  # cls_token, dist_token, iou_token
    "*_tokens",  # reg_tokens, mask_tokens
)


def check_prefixes(module: nn.Module, argument: str, prefixes: Iterable[str]) -> None:
    """Raise a ValueError naming ``argument`` and the prefix when a prefix names no parameter."""
    names = [name for name, _ in module.named_parameters()]
    example = f"names look like '{names[0]}'" if names else "the module has no parameters"
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in names):
            raise ValueError(f"{argument}: no parameter name starts with '{prefix}' ({example})")


def _listed_by_modules(module: nn.Module) -> list[str]:
    """Full-name patterns from every submodule's ``no_weight_decay()``, as timm models list them.

    timm lists names relative to the module that declares them (Hiera: ``pos_embed``), so each is
    prefixed with that module's path; a listed name may be a wildcard or a submodule's name.
    """
    patterns = []
    for path, submodule in module.named_modules():
        listing = getattr(submodule, "no_weight_decay", None)
        if not callable(listing):
            continue
        prefix = f"{path}." if path else ""
        for name in listing():
            patterns += [prefix + name, f"{prefix}{name}.*"]
    return patterns


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """Names of ``module``'s parameters that AdamW must not decay (timm's rule).

    Not decayed: every parameter with ``ndim <= 1`` (norm scales and shifts, biases: decaying them
    towards 0 only hurts), every ``nn.Embedding`` weight (SAM's prompt embeddings and output
    tokens are embeddings), position embeddings and tokens by name
    (:data:`NO_DECAY_PARAMETER_PATTERNS`), and whatever a submodule lists in ``no_weight_decay()``.
    """
    embeddings = {
        f"{path}.{name}" if path else name
        for path, submodule in module.named_modules()
        if isinstance(submodule, nn.Embedding)
        for name, _ in submodule.named_parameters(recurse=False)
    }
    listed = _listed_by_modules(module)
    excluded = set()
    for name, parameter in module.named_parameters():
        own_name = name.rsplit(".", 1)[-1]
        if (
            parameter.ndim <= 1
            or name in embeddings
            or any(fnmatch.fnmatchcase(own_name, p) for p in NO_DECAY_PARAMETER_PATTERNS)
            or any(fnmatch.fnmatchcase(name, p) for p in listed)
        ):
            excluded.add(name)
    return excluded


# detectron2's ``get_default_optimizer_params`` (solver/build.py): every parameter a module of
# these types owns directly is spared by ``weight_decay_norm=0``; nothing else is.
NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def norm_parameter_names(module: nn.Module) -> set[str]:
    """Names of the parameters owned by ``module``'s normalisation layers (detectron2's rule).

    The weights and biases of every :data:`NORM_TYPES` layer (subclasses included); every other
    parameter decays: biases of linear and convolution layers, embeddings, tokens. The SDMatte
    release trains with this rule (detectron2's ``AdamW`` config, ``weight_decay_norm=0``).
    """
    return {
        f"{path}.{name}" if path else name
        for path, submodule in module.named_modules()
        if isinstance(submodule, NORM_TYPES)
        for name, _ in submodule.named_parameters(recurse=False)
    }


#: ``no_decay`` rule -> the names of the parameters it spares from weight decay.
NO_DECAY_RULES = {"timm": no_weight_decay_names, "norms": norm_parameter_names}


def parameter_groups(
    module: nn.Module,
    lr: float,
    weight_decay: float,
    lr_multipliers: Mapping[str, float] | None = None,
    no_decay: NoDecayRule = "timm",
) -> list[dict]:
    """AdamW parameter groups of ``module``'s trainable parameters.

    Grouped by (learning-rate factor, decayed or not): the factor is that of the first prefix in
    ``lr_multipliers`` the name starts with (1 when none), decay follows the ``no_decay`` rule
    (:data:`NO_DECAY_RULES`: ``timm``, :func:`no_weight_decay_names`; ``norms``,
    :func:`norm_parameter_names`). Each group holds ``params``, ``lr`` (``lr`` x factor),
    ``weight_decay`` (0 for the non-decayed) and a readable ``name`` such as ``"x10/decay"``
    (Lightning's LearningRateMonitor labels its curves by it). Groups come in the order their
    first parameter appears, so the same module always gives the same groups: resuming an
    optimiser state needs that. Prefixes are not checked here; check them with
    :func:`check_prefixes` when the module is built, before any training starts.
    """
    if no_decay not in NO_DECAY_RULES:
        raise ValueError(f"no_decay must be one of {tuple(NO_DECAY_RULES)}, got {no_decay!r}")
    multipliers = lr_multipliers or {}
    excluded = NO_DECAY_RULES[no_decay](module)
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        factor = next((f for p, f in multipliers.items() if name.startswith(p)), 1.0)
        groups.setdefault((factor, name not in excluded), []).append(parameter)
    return [
        {
            "params": params,
            "lr": lr * factor,
            "weight_decay": weight_decay if decays else 0.0,
            "name": f"x{factor:g}/{'decay' if decays else 'no_decay'}",
        }
        for (factor, decays), params in groups.items()
    ]


SCHEDULE_NAMES = ("constant", "cosine", "exponential", "poly")


@dataclass(frozen=True)
class LRSchedule:
    """The multiplier on the peak learning rate at each optimiser step.

    From ``warmup_steps`` on, by ``name``:

    - ``constant``: 1;
    - ``cosine``: ``0.5 (1 + cos(pi progress))``, from 1 to 0 at ``total_steps``;
    - ``exponential``: ``decay ** (step - origin_step)``;
    - ``poly``: ``(1 - progress) ** power``;

    where ``progress = (step - origin_step) / (total_steps - origin_step)``, clipped to 1, and
    ``origin_step`` is where the decay's clock starts: ``warmup_steps`` with
    ``origin="warmup_end"`` (the decay begins at 1 when the warm-up ends), 0 with
    ``origin="start"`` (the clock runs through the warm-up, so the warm-up ends at the decayed
    value: detectron2's ``WarmupParamScheduler`` with ``rescale_interval=False``, the SDMatte
    release's).

    Before ``warmup_steps``, a linear warm-up towards ``target``, the value above at step
    ``warmup_steps``: ``(step + 1) / warmup_steps x target`` with ``warmup_start_factor=None``
    (the first step already moves, the last warm-up step reaches ``target``), else
    detectron2's ``warmup_start_factor + (target - warmup_start_factor) x step / warmup_steps``
    (step 0 at ``warmup_start_factor``, ``target`` reached at step ``warmup_steps``). The SDMatte
    release: ``warmup_start_factor=0.001``, ``origin="start"``, ``decay = 0.005 ** (1 / 30501)``.

    ``milestones`` (poly only) are ``(step, factor)`` pairs, TeachDiffusionMatting's "LambdaLR
    with several specified milestones": before the first milestone the poly curve; from each
    milestone's step on, its factor, until the next. Factors multiply the peak learning rate, so
    per-prefix ``lr_multipliers`` still apply on top. TeachDiffusionMatting's Table 4 lists its
    "Scheduler Value" column (``[0.5, 0.25]`` for an initial learning rate of 5e-5) as
    ``LambdaLR`` lambda values, i.e. already multipliers of the initial learning rate: they are
    the factors as printed (stage 1: ``milestones=((15000, 0.5), (40000, 0.25))``, learning rate
    2.5e-5 from iteration 15000 and 1.25e-5 from 40000). A milestone given as an absolute
    learning rate ``v`` becomes the factor ``v / lr``.

    Lists (as a YAML config gives them) are accepted for ``milestones`` and stored as tuples.
    """

    name: Literal["constant", "cosine", "exponential", "poly"] = "cosine"
    warmup_steps: int = 0
    decay: float = 0.999
    power: float = 0.9
    milestones: tuple[tuple[int, float], ...] = ()
    warmup_start_factor: float | None = None
    origin: ScheduleOrigin = "warmup_end"

    def __post_init__(self) -> None:
        if self.name not in SCHEDULE_NAMES:
            raise ValueError(f"lr schedule '{self.name}' is unknown; choose from {SCHEDULE_NAMES}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        start = self.warmup_start_factor
        if start is not None and not 0 <= start <= 1:
            raise ValueError(f"warmup_start_factor must be in [0, 1] or None, got {start}")
        if self.origin not in ("warmup_end", "start"):
            raise ValueError(
                f"the schedule's origin must be 'warmup_end' or 'start', got {self.origin!r}"
            )
        if self.decay <= 0:
            raise ValueError(f"the exponential schedule's decay must be > 0, got {self.decay}")
        if self.power < 0:
            raise ValueError(f"the poly schedule's power must be >= 0, got {self.power}")
        milestones = tuple((int(step), float(factor)) for step, factor in self.milestones)
        object.__setattr__(self, "milestones", milestones)  # frozen: normalise once, here
        self._check_milestones()

    def _check_milestones(self) -> None:
        if not self.milestones:
            return
        if self.name != "poly":
            raise ValueError(
                f"milestones belong to the poly schedule (TeachDiffusionMatting); "
                f"the '{self.name}' schedule takes none, got {self.milestones}"
            )
        steps = [step for step, _ in self.milestones]
        if any(step <= 0 for step in steps):
            raise ValueError(f"milestone steps must be positive, got {steps}")
        if any(step <= self.warmup_steps for step in steps):
            raise ValueError(
                f"milestone steps must come after the warm-up ({self.warmup_steps} steps), "
                f"got {steps}"
            )
        if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
            raise ValueError(f"milestone steps must be strictly increasing, got {steps}")
        factors = [factor for _, factor in self.milestones]
        if any(factor <= 0 for factor in factors):
            raise ValueError(f"milestone factors must be > 0, got {factors}")

    def factor(self, step: int, total_steps: int) -> float:
        """Multiplier on the peak learning rate at optimiser step ``step`` (counted from 0)."""
        warmup = self.warmup_steps
        if step < warmup:
            target = self._after_warmup(warmup, total_steps)
            start = self.warmup_start_factor
            if start is None:
                return (step + 1) / warmup * target
            return start + (target - start) * step / warmup
        return self._after_warmup(step, total_steps)

    def _after_warmup(self, step: int, total_steps: int) -> float:
        reached = [factor for milestone, factor in self.milestones if step >= milestone]
        if reached:
            return reached[-1]
        origin = self.warmup_steps if self.origin == "warmup_end" else 0
        progress = min(1.0, (step - origin) / max(1, total_steps - origin))
        if self.name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if self.name == "exponential":
            return self.decay ** (step - origin)
        if self.name == "poly":
            return (1 - progress) ** self.power
        return 1.0
