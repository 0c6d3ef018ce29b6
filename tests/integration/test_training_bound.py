"""``mattekit fit`` without a bound of its own trains ``DEFAULT_MAX_EPOCHS`` epochs, not
Lightning's 1000; a bound the run sets, in epochs, steps or time, wins (issue 23, item D)."""

import pytest
import yaml

from mattekit.cli import main
from mattekit.matting_cli import DEFAULT_MAX_EPOCHS, MattingCLI, resolve_model_aliases

TINY = [
    "--model", "baseline", "--model.base_channels=8", "--model.depth=2", "--data.image_size=32",
    "--data.num_workers=0", "--trainer.accelerator=cpu",
]  # fmt: skip


def test_print_config_of_the_defaults_shows_the_bound(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "baseline", "--print_config"])
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["max_epochs"] == DEFAULT_MAX_EPOCHS == 1


def trainer_of(args: list[str], folder) -> object:
    argv = resolve_model_aliases([*TINY, *args, f"--trainer.default_root_dir={folder}"])
    return MattingCLI(args=argv, run=False).trainer


@pytest.mark.parametrize(
    ("args", "max_epochs", "max_steps"),
    [
        ([], DEFAULT_MAX_EPOCHS, -1),  # no bound given: the default
        # None: steps (or time) alone bound the run, as in Lightning.
        (["--trainer.max_steps=7"], None, 7),
        (["--trainer.max_time=00:00:01:00"], None, -1),
        (["--trainer.max_epochs=3"], 3, -1),
        # Given explicitly, the default value is kept beside a step bound.
        ([f"--trainer.max_epochs={DEFAULT_MAX_EPOCHS}", "--trainer.max_steps=7"], 1, 7),
        (["--config=configs/quickstart.yaml"], 4, -1),  # the quickstart's own bound
        (["--config=configs/trainer/cpu_smoke.yaml"], None, 20),
    ],
)
def test_the_run_bound_wins_over_the_default(args, max_epochs, max_steps, tmp_path):
    trainer = trainer_of(args, tmp_path)
    assert (trainer.max_epochs, trainer.max_steps) == (max_epochs, max_steps)
