"""Contract tests run over every registered family (as timm tests every model).

A new family is covered by registering itself: its tiny variant must predict a valid alpha
with every prompt kind it accepts (and a different one for each), train every trainable
parameter, keep its frozen parts frozen and survive a save / restore unchanged; its paper-size
variant must build on the meta device. A family trained in stages is checked at every stage,
each built from a checkpoint of the stage before.
"""

import pytest
import torch

from mattekit.checkpoint_config import init_defaults
from mattekit.models import MODELS, MattingModule
from mattekit.nn.attention_backend import recorded_sdpa_calls
from mattekit.prompts import with_kind

ENTRIES = sorted(MODELS.values(), key=lambda entry: entry.alias)
#: (entry, stage) for every family, every stage of staged ones (None: a family without stages).
CASES = [(entry, stage) for entry in ENTRIES for stage in entry.stages or (None,)]
#: (case, kind) for every prompt kind each family accepts.
KIND_CASES = [(case, kind) for case in CASES for kind in case[0].prompts]


def case_id(case) -> str:
    entry, stage = case
    return entry.alias + (f"[{stage}]" if stage else "")


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(32, 4, stage="train")


@pytest.mark.parametrize(
    ("case", "kind"), KIND_CASES, ids=lambda c: c if isinstance(c, str) else case_id(c)
)
def test_alpha_shape_and_range_for_every_accepted_kind(case, kind, batch, staged):
    module = staged(case).eval()
    with torch.no_grad():
        outputs = module(with_kind(batch, kind))
    assert outputs["alpha"].shape == batch.alpha.shape
    assert outputs["alpha"].min() >= 0 and outputs["alpha"].max() <= 1
    if "alpha_logits" in outputs:
        assert torch.allclose(outputs["alpha_logits"].sigmoid(), outputs["alpha"], atol=1e-6)


@pytest.mark.parametrize("case", [c for c in CASES if len(c[0].prompts) > 1], ids=case_id)
def test_each_accepted_kind_reaches_the_network(case, batch, staged):
    """The kind the batch names is the prompt the network reads: every pair of kinds gives
    different alphas (a kind the forward ignored would give the other's)."""
    module = staged(case).eval()
    with torch.no_grad():
        alphas = {kind: module(with_kind(batch, kind))["alpha"] for kind in case[0].prompts}
    kinds = list(alphas)
    for i, first in enumerate(kinds):
        for second in kinds[i + 1 :]:
            assert not torch.allclose(alphas[first], alphas[second]), (first, second)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_kind_the_family_does_not_take_is_refused_naming_it(case, batch, staged):
    module = staged(case).eval()
    refused = next(kind for kind in ("text", "trimap", "box") if kind not in case[0].prompts)
    with pytest.raises(ValueError, match=f"not '{refused}'"):
        module(with_kind(batch, refused))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_trainable_parameter_gets_a_gradient_and_frozen_parts_stay(case, batch, staged):
    # Training on every kind the family takes, so every prompt path gets a gradient.
    module = staged(case, prompt_kinds=list(case[0].prompts)).train()
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


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_save_then_restore_gives_identical_outputs(case, batch, tmp_path, staged, save_module):
    entry, _ = case
    module = staged(case).eval()
    with torch.no_grad():
        for p in module.parameters():  # not the initial weights: restore must really load
            p.add_(0.01 * torch.randn_like(p))
        expected = module(batch)["alpha"]
    path = tmp_path / "model.ckpt"
    save_module(module, path)
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


#: Families whose attention is all the libraries' (timm's Hiera, transformers' VitDet) or none.
WITHOUT_OWN_ATTENTION = {"baseline", "vitmatte", "zim_converter"}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_no_attention_falls_back_to_the_kernel_that_builds_the_l_by_l_map(case, batch, staged):
    """Every ``F.scaled_dot_product_attention`` mattekit calls in a training step runs a fused
    kernel on the CPU, not MATH (issue 27: L_STM's maps). The libraries' calls are audited at
    paper size by ``benchmarks/sdpa_backends.py`` (timm's Hiera attends within windows through
    5-D tensors, which no fused kernel takes; its maps are per window)."""
    module = staged(case, prompt_kinds=list(case[0].prompts)).train()
    with recorded_sdpa_calls() as calls:
        module.training_step(batch, 0).backward()
    ours = [call for call in calls if call.caller.startswith("mattekit.")]
    assert bool(ours) == (case[0].alias not in WITHOUT_OWN_ATTENTION), len(ours)
    math = [(call.caller, call.query, call.value) for call in ours if call.backend == "math"]
    assert not math, math
