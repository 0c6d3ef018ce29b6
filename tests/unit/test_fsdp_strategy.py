"""MattingFSDPStrategy in this process (one gloo process: FSDP wraps, but shards nothing).

What sharding over two processes changes (flat 1-D shards, frozen parts left whole) is
checked by ``tests/integration/test_fsdp.py``.
"""

import socket

import lightning as L
import pytest
import torch
import torch.distributed as dist
from torch.distributed.fsdp._common_utils import clean_tensor_name

from mattekit.data.datamodule import MattingDataModule
from mattekit.fsdp import MattingFSDPStrategy
from mattekit.models.sdmatte import SDMatte

#: A prefix inside a block FSDP wraps: wrapped, its parameters are named
#: ``...resnets.0._fsdp_wrapped_module.conv1.weight``.
DEEP = "model.unet.down_blocks.0.resnets.0.conv1"


@pytest.fixture(name="one_process_group")
def one_process_group_fixture(monkeypatch):
    """Lightning starts a one-process group on a free port; it is closed after the test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def fit(module: SDMatte, folder, steps: int, **trainer_args) -> L.Trainer:
    # Lightning's sampler wrapper off: in one process the data module keeps its own sampler,
    # and a resume through the wrapper fails (IndexError, with DDP as well).
    data = MattingDataModule(
        image_size=32, batch_size=2, num_workers=0, synthetic_train_samples=8,
        synthetic_eval_samples=2,
    )  # fmt: skip
    ckpt_path = trainer_args.pop("ckpt_path", None)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=folder,
        num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False, **trainer_args,
    )  # fmt: skip
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return trainer


def by_name(module: torch.nn.Module, groups: list[dict], value) -> dict:
    """``{parameter name (without FSDP's wrapper names): value(group, parameter)}``."""
    names = {p: clean_tensor_name(n) for n, p in module.named_parameters()}
    return {names[p]: value(group, p) for group in groups for p in group["params"]}


def copied(state: dict) -> dict:
    return {key: value.clone() for key, value in state.items()}


def test_parameter_groups_under_fsdp_are_the_unwrapped_ones(tmp_path, one_process_group):
    multipliers = {DEEP: 10.0, "model.vae": 0.1}
    settings = {"variant": "tiny", "lr": 1e-3, "weight_decay": 0.05, "no_decay": "timm"}
    settings["lr_multipliers"] = multipliers
    torch.manual_seed(0)
    plain = SDMatte(**settings)

    def lr_and_decay(group, _):
        return group.get("initial_lr", group["lr"]), group["weight_decay"]

    expected = by_name(plain, plain.parameter_groups(), lr_and_decay)
    torch.manual_seed(0)
    module = SDMatte(**settings)
    trainer = fit(module, tmp_path, steps=1, strategy=MattingFSDPStrategy())

    wrapped = [n for n, _ in module.named_parameters() if "_fsdp_wrapped_module." in n]
    assert any(n.startswith(DEEP.rsplit(".", 1)[0]) for n in wrapped)  # the block is a unit
    assert by_name(module, trainer.optimizers[0].param_groups, lr_and_decay) == expected
    assert expected[f"{DEEP}.weight"] == (pytest.approx(1e-2), 0.05)
    assert expected[f"{DEEP}.bias"] == (pytest.approx(1e-2), 0.0)


def test_fsdp_resumes_the_optimiser_of_a_checkpoint_written_without_it(tmp_path, one_process_group):
    torch.manual_seed(0)
    plain = SDMatte(variant="tiny")
    # DDP as the run without FSDP: a one-process run's loader state resumes in one process only.
    trainer = fit(plain, tmp_path / "plain", steps=2, strategy="ddp")
    checkpoint = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(checkpoint)  # AdamW's state keyed by position in its groups
    state = trainer.optimizers[0].state
    expected = by_name(plain, trainer.optimizers[0].param_groups, lambda _, p: state[p])

    restored: dict = {}

    class Capture(L.Callback):
        def on_train_start(self, trainer, pl_module):
            optimizer = trainer.optimizers[0]
            restored.update(
                by_name(pl_module, optimizer.param_groups, lambda _, p: copied(optimizer.state[p]))
            )

    torch.manual_seed(1)
    module = SDMatte(variant="tiny")
    fit(
        module, tmp_path / "fsdp", steps=3, strategy=MattingFSDPStrategy(),
        callbacks=[Capture()], ckpt_path=checkpoint,
    )  # fmt: skip
    assert restored.keys() == expected.keys()
    for name, saved in expected.items():
        assert int(restored[name]["step"]) == 2, name
        assert torch.equal(restored[name]["exp_avg_sq"], saved["exp_avg_sq"]), name
