"""Contract tests run over every registered family (as timm tests every model).

A new family is covered by adding its registry line: its tiny variant must predict a valid
alpha, train every trainable parameter, keep its frozen parts frozen and survive a save /
restore unchanged; its paper-size variant must build on the meta device.
"""

import pytest
import torch

from mattekit.checkpoint_config import init_defaults
from mattekit.models import MODELS, MattingModule
from mattekit.models.prompting import SPATIAL_KINDS

ENTRIES = sorted(MODELS.values(), key=lambda entry: entry.alias)


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(32, 4, stage="train")


def tiny(entry, **kwargs):
    torch.manual_seed(0)
    return entry.cls(**entry.tiny, **kwargs)


def all_prompt_kinds(entry) -> dict:
    """Train on every prompt kind the family takes, so every prompt path gets a gradient."""
    kinds = list(entry.prompts)
    eval_kind = next((k for k in ("box", *SPATIAL_KINDS) if k in kinds), kinds[0])
    if "prompt_kinds" not in entry.cls.__init__.__code__.co_varnames:
        return {}
    return {"prompt_kinds": kinds, "eval_prompt": eval_kind}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.alias)
def test_alpha_shape_and_range(entry, batch):
    module = tiny(entry).eval()
    with torch.no_grad():
        outputs = module(batch)
    assert outputs["alpha"].shape == batch.alpha.shape
    assert outputs["alpha"].min() >= 0 and outputs["alpha"].max() <= 1
    if "alpha_logits" in outputs:
        assert torch.allclose(outputs["alpha_logits"].sigmoid(), outputs["alpha"], atol=1e-6)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.alias)
def test_every_trainable_parameter_gets_a_gradient_and_frozen_parts_stay(entry, batch):
    module = tiny(entry, **all_prompt_kinds(entry)).train()
    frozen = {
        (part.name, name): value.clone()
        for part in module.frozen_parts
        for name, value in module.get_submodule(part.name).state_dict().items()
    }
    optimizer = torch.optim.AdamW(module.parameter_groups())
    trained = set()
    for step in range(4):  # prompt kinds are drawn per sample: a few batches see them all
        optimizer.zero_grad()
        module.training_step(batch, step).backward()
        trained |= {
            name
            for name, p in module.named_parameters()
            if p.grad is not None and p.grad.abs().sum() > 0
        }
        optimizer.step()
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    without_gradient = trainable - trained
    assert not without_gradient, f"trainable but never trained: {sorted(without_gradient)[:8]}"
    for part in module.frozen_parts:
        submodule = module.get_submodule(part.name)
        assert not submodule.training
        for name, value in submodule.state_dict().items():
            assert torch.equal(value, frozen[part.name, name]), f"{part.name}.{name} changed"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.alias)
def test_save_then_restore_gives_identical_outputs(entry, batch, tmp_path):
    module = tiny(entry).eval()
    with torch.no_grad():
        for p in module.parameters():  # not the initial weights: restore must really load
            p.add_(0.01 * torch.randn_like(p))
        expected = module(batch)["alpha"]
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": "2.6.0",
        },
        path,
    )
    restored = entry.cls.load_from_checkpoint(path).eval()
    with torch.no_grad():
        assert torch.equal(restored(batch)["alpha"], expected)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.alias)
def test_paper_size_variant_builds_on_the_meta_device(entry):
    with torch.device("meta"):
        module = entry.cls(**entry.paper_size)
    parameters = sum(p.numel() for p in module.parameters())
    assert all(p.device.type == "meta" for p in module.parameters())
    assert parameters > 1_000_000 or not entry.paper_size, parameters


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.alias)
def test_run_settings_are_init_arguments(entry):
    """What a command line may change on a trained checkpoint names real arguments; the rest of
    the arguments shape the network (``mattekit.checkpoint_config``)."""
    arguments = set(init_defaults(entry.cls))
    assert entry.cls.run_settings <= arguments, entry.cls.run_settings - arguments
    assert MattingModule.run_settings <= entry.cls.run_settings
    assert {"lr", "metric_preset", "eval_with_trimap"} <= entry.cls.run_settings
