"""Test-session settings and helpers shared by every test."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mattekit.data.datamodule import MattingDataModule, synthetic_batch
from mattekit.data.sample import MattingBatch
from mattekit.models.saving import save_fit_checkpoint, save_module_checkpoint

# `pytest -n 2` runs two worker processes on a 2-core machine: with torch's default of one
# thread per core each, the workers oversubscribe the CPU and tiny matmuls take milliseconds.
torch.set_num_threads(1)

#: What a distributed launcher leaves in the environment. Lightning's in-process launch (one
#: process under strategy="ddp" or FSDP) sets LOCAL_RANK and NODE_RANK; a later test's
#: `mattekit fit --trainer.devices 2` subprocess then takes itself for a launched rank, starts
#: no second process and waits for it until its timeout.
LAUNCHER_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE", "GROUP_RANK",
                      "MASTER_ADDR", "MASTER_PORT")  # fmt: skip


@pytest.fixture(autouse=True)
def _launcher_environment_restored():
    """After each test: the launcher's variables as before, and no process group left open
    (a later in-process run would join it instead of starting its own)."""
    saved = {name: os.environ.get(name) for name in LAUNCHER_VARIABLES}
    yield
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def train_on_batch(module, batch: MattingBatch, steps: int) -> list[float]:
    """AdamW on ``module``'s parameter groups for ``steps`` steps on one batch; the losses."""
    optimizer = torch.optim.AdamW(module.parameter_groups())
    losses = []
    for _ in range(steps):
        loss = module.train().training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def save_tiny_checkpoint(alias: str, folder: Path) -> Path:
    """A registered family's tiny variant (random weights, seed 0) saved as the CLI saves it:
    class path and instantiator in the hyperparameters, unstored parts left out."""
    from mattekit.models import MODELS

    entry = MODELS[alias]
    torch.manual_seed(0)
    return save_fit_checkpoint(entry.cls(**entry.tiny), Path(folder) / f"{alias}.ckpt")


def user_prompt(kind: str, folder: Path, size: tuple[int, int]):
    """A :class:`~mattekit.prompts.user.UserPrompt` of ``kind`` on a ``size`` (H, W) photo, its
    files written into ``folder``. Every kind has an example here: a new kind without one fails
    the tests that go over them all."""
    from mattekit.prompts.user import UserPrompt

    height, width = size
    x0, y0, x1, y1 = width // 4, height // 4, 3 * width // 4, 3 * height // 4
    picture = np.zeros(size, np.uint8)
    picture[y0:y1, x0:x1] = 128 if kind == "trimap" else 255
    picture[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 255
    path = Path(folder) / f"{kind}.png"
    if kind in ("mask", "trimap"):
        cv2.imwrite(str(path), picture)
    examples = {
        "points": {"points": ((width // 2, height // 2, 1), (2, 2, 0))},
        "box": {"box": (x0, y0, x1, y1)},
        "mask": {"mask": path},
        "trimap": {"trimap": path},
        "text": {"text": "the grey square"},
        "none": {},
    }
    return UserPrompt(**examples[kind], kind=kind)


def user_prompt_args(kind: str, folder: Path, size: tuple[int, int]) -> list[str]:
    """:func:`user_prompt` as ``mattekit matte`` arguments, by each kind's own flag."""
    from mattekit.prompts import KINDS

    prompt = user_prompt(kind, folder, size)
    values = {
        "points": [",".join(map(str, point)) for point in prompt.points],
        "box": [",".join(map(str, prompt.box or ()))],
        "mask": [str(prompt.mask)],
        "trimap": [str(prompt.trimap)],
        "text": [prompt.text],
    }
    flag = KINDS[kind].flag
    return [part for value in values.get(kind, []) for part in (flag, value)]


@pytest.fixture(name="user_prompt", scope="session")
def user_prompt_fixture():
    """:func:`user_prompt`: an example prompt of any kind."""
    return user_prompt


@pytest.fixture(name="user_prompt_args", scope="session")
def user_prompt_args_fixture():
    """:func:`user_prompt_args`: a prompt of any kind as ``mattekit matte`` flags."""
    return user_prompt_args


@pytest.fixture(name="tiny_checkpoint")
def tiny_checkpoint_fixture(tmp_path):
    """``tiny_checkpoint(alias)``: :func:`save_tiny_checkpoint` into the test's folder."""
    return lambda alias: save_tiny_checkpoint(alias, tmp_path)


@pytest.fixture(name="save_checkpoint", scope="session")
def save_checkpoint_fixture():
    """:func:`save_tiny_checkpoint` itself, for module-scoped fixtures and helpers (a test module
    importing ``conftest`` may get another folder's conftest)."""
    return save_tiny_checkpoint


@pytest.fixture(name="save_module", scope="session")
def save_module_fixture():
    """:func:`save_module_checkpoint`: any module saved as Lightning saves it."""
    return save_module_checkpoint


def fit_on_synthetic(module, folder: Path, steps: int = 3, ckpt_path=None, **trainer_args):
    """``module`` trained ``steps`` steps by a one-process CPU Trainer on 8 synthetic 32 px
    scenes (batch 2), no logger or progress bar, resumed from ``ckpt_path`` if given;
    ``trainer_args`` add to or replace the Trainer's. Returns the Trainer."""
    import lightning as L

    data = MattingDataModule(
        image_size=32, batch_size=2, num_workers=0, synthetic_train_samples=8,
        synthetic_eval_samples=2,
    )  # fmt: skip
    settings = {
        "accelerator": "cpu", "max_steps": steps, "logger": False, "enable_progress_bar": False,
        "enable_model_summary": False, "default_root_dir": folder, "num_sanity_val_steps": 0,
    }  # fmt: skip
    trainer = L.Trainer(**{**settings, **trainer_args})
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return trainer


@pytest.fixture(name="fit_on_synthetic", scope="session")
def fit_on_synthetic_fixture():
    """:func:`fit_on_synthetic`: a module trained a few steps under a Trainer."""
    return fit_on_synthetic


@pytest.fixture(name="staged", scope="module")
def staged_fixture(tmp_path_factory):
    """``staged(case, **kwargs)``: a registered family's tiny module (seed 0) for the contract
    tests over the registry; ``case`` is ``(entry, stage)``, stage None for a family without
    stages. A later stage starts from a saved checkpoint of the stage before (made once per
    test module)."""
    files = {}

    def build(case, **kwargs):
        entry, stage = case
        if stage is not None:
            index = entry.stages.index(stage)
            if index:
                previous = entry.stages[index - 1]
                if (entry.alias, previous) not in files:
                    path = tmp_path_factory.mktemp(entry.alias) / f"{previous}.ckpt"
                    files[entry.alias, previous] = save_module_checkpoint(
                        build((entry, previous)), path
                    )
                kwargs["previous_stage"] = str(files[entry.alias, previous])
            kwargs["stage"] = stage
        torch.manual_seed(0)
        return entry.cls(**entry.tiny, **kwargs)

    return build


@pytest.fixture(name="synthetic_batch")
def synthetic_batch_fixture():
    """:func:`mattekit.data.datamodule.synthetic_batch`: seeded scenes through the pipeline."""
    return synthetic_batch


@pytest.fixture(name="train_on_batch")
def train_on_batch_fixture():
    return train_on_batch
