"""``--model.activation_checkpointing`` over the whole registry: one training step with the
switch gives the plain step's gradients, and the declared blocks really are recomputed (a
module inside each runs twice: forward, then again in backward). A family or stage with nothing
to recompute refuses the switch by name. SDMatte's old name, ``gradient_checkpointing``, still
loads from checkpoints.
"""

import pytest
import torch

from mattekit.checkpoint_config import init_defaults, resolve_checkpoint_model
from mattekit.models import MODELS
from mattekit.models.registry import list_models
from mattekit.models.sdmatte import SDMatte
from mattekit.nn.activation_checkpointing import is_checkpointed

#: (entry, stage) for every family, every stage of staged ones (None: a family without stages).
CASES = [(entry, stage) for entry in list_models() for stage in entry.stages or (None,)]
#: Cases without blocks to recompute, and the name their refusal gives.
REFUSED = {("baseline", None): "Baseline", ("teachmatte", "decoder"): "TeachMatte stage decoder"}
#: Checkpointing recomputes the same operations on the same inputs: on CPU the gradients are
#: bitwise equal; this bounds the difference relative to each parameter's largest gradient.
RELATIVE_TOLERANCE = 1e-5


def case_id(case) -> str:
    entry, stage = case
    return entry.alias + (f"[{stage}]" if stage else "")


def probe(block: torch.nn.Module) -> torch.nn.Module:
    """A module inside ``block`` with parameters of its own: its forward hook fires once per
    run of the block's body, recomputations included (the block's own hook fires once)."""
    owning = (m for m in block.modules() if next(m.parameters(False), None) is not None)
    return next(m for m in owning if m is not block)


def training_step(module, batch) -> tuple[dict[str, torch.Tensor], list[int]]:
    """One training step's gradients by parameter name, and how often each declared block's
    body ran."""
    blocks = module.checkpointed_blocks()
    calls = [0] * len(blocks)
    handles = [
        probe(block).register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, block in enumerate(blocks)
    ]
    torch.manual_seed(1)  # the same prompt draws and dropout in both runs
    module.train().training_step(batch, 0).backward()
    for handle in handles:
        handle.remove()
    grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    return grads, calls


def trains(block: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in block.parameters())


@pytest.mark.parametrize(
    "case", [c for c in CASES if (c[0].alias, c[1]) not in REFUSED], ids=case_id
)
def test_checkpointed_step_gives_the_plain_gradients_and_recomputes(case, staged, synthetic_batch):
    batch = synthetic_batch(32, 2, stage="train")
    plain = staged(case)
    checkpointed = staged(case, activation_checkpointing=True)
    assert checkpointed.hparams.activation_checkpointing is True
    expected, plain_calls = training_step(plain, batch)
    grads, calls = training_step(checkpointed, batch)

    assert grads.keys() == expected.keys() and grads
    for name, grad in grads.items():
        scale = expected[name].abs().max().clamp_min(1e-12)
        difference = (grad - expected[name]).abs().max() / scale
        assert difference <= RELATIVE_TOLERANCE, (name, difference.item())
    blocks = checkpointed.checkpointed_blocks()
    assert all(is_checkpointed(block) for block in blocks)
    for block, once, seen in zip(blocks, plain_calls, calls, strict=True):
        assert once >= 1
        # A trained block runs again in backward; a frozen one fed by frozen parts (SAMA's
        # ViT, a teacher) runs once, as without the switch.
        assert seen == (2 * once if trains(block) else seen), (type(block).__name__, once, seen)
        assert seen in (once, 2 * once)
    assert sum(calls) > sum(plain_calls)


@pytest.mark.parametrize("case", [c for c in CASES if (c[0].alias, c[1]) in REFUSED], ids=case_id)
def test_a_model_with_nothing_to_recompute_refuses_the_switch_by_name(case, staged):
    with pytest.raises(ValueError, match=REFUSED[case[0].alias, case[1]]):
        staged(case, activation_checkpointing=True)


def test_evaluation_runs_the_plain_forward_once(staged, synthetic_batch):
    batch = synthetic_batch(32, 2)
    case = (MODELS["zim"], None)
    plain, checkpointed = staged(case).eval(), staged(case, activation_checkpointing=True).eval()
    calls = []
    probe(checkpointed.checkpointed_blocks()[0]).register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        assert torch.equal(checkpointed(batch)["alpha"], plain(batch)["alpha"])
    assert len(calls) == 1


def old_sdmatte_checkpoint(path, save_module, instantiator: bool):
    """A tiny SDMatte saved as before the rename: ``gradient_checkpointing: True``."""
    torch.manual_seed(0)
    module = SDMatte(variant="tiny")
    module.hparams.pop("activation_checkpointing")
    module.hparams["gradient_checkpointing"] = True
    if instantiator:  # as the CLI saves it: rebuilt through jsonargparse
        module.hparams["_class_path"] = MODELS["sdmatte"].class_path
        module.hparams["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    return save_module(module, path)


@pytest.mark.parametrize("instantiator", [False, True], ids=["python", "cli"])
def test_sdmatte_checkpoint_with_the_old_name_loads_with_the_switch_on(
    instantiator, tmp_path, save_module
):
    path = old_sdmatte_checkpoint(tmp_path / "old.ckpt", save_module, instantiator)
    restored = SDMatte.load_from_checkpoint(path)
    assert restored.hparams.activation_checkpointing is True
    assert "gradient_checkpointing" not in restored.hparams
    assert restored.checkpointed_blocks() and all(
        is_checkpointed(block) for block in restored.checkpointed_blocks()
    )


def test_ckpt_path_reads_the_old_name_as_the_new_one(tmp_path, save_module):
    path = old_sdmatte_checkpoint(tmp_path / "old.ckpt", save_module, instantiator=True)
    given = init_defaults(SDMatte)
    _, arguments = resolve_checkpoint_model(path, None, given, argv=[])
    assert arguments["activation_checkpointing"] is True
    assert arguments["gradient_checkpointing"] is None


def test_the_old_name_given_sets_the_switch_and_only_the_new_name_is_stored():
    module = SDMatte(variant="tiny", gradient_checkpointing=True)
    assert module.hparams.activation_checkpointing is True
    assert "gradient_checkpointing" not in module.hparams
    assert all(is_checkpointed(block) for block in module.checkpointed_blocks())


def test_ckpt_path_command_line_switch_wins_over_the_old_name(tmp_path, save_module):
    path = old_sdmatte_checkpoint(tmp_path / "old.ckpt", save_module, instantiator=True)
    given = {**init_defaults(SDMatte), "activation_checkpointing": False}
    argv = ["--model.activation_checkpointing=false"]
    _, arguments = resolve_checkpoint_model(path, None, given, argv)
    assert arguments["activation_checkpointing"] is False
    assert arguments["gradient_checkpointing"] is None
