"""SDMatte's training recipes (``configs/recipes/sdmatte_{release,paper}.yaml``) resolved through
the CLI beside the model configs, against the release's values written out by hand
(vivoCameraResearch/SDMatte ``data/dataset.py``, ``configs/SDMatte.py``)."""

from pathlib import Path

import pytest
import torch
import yaml

from mattekit.cli import main
from mattekit.models.sdmatte.lightning_model import SDMatte
from mattekit.prompts import check_kinds, random_kinds

ROOT = Path(__file__).parents[3]
RELEASE = "--config=configs/recipes/sdmatte_release.yaml"
PAPER = "--config=configs/recipes/sdmatte_paper.yaml"

RELEASE_PROMPTS = {
    "positive_points": [10, 10],
    "negative_points": [0, 0],
    "point_threshold": 0.8,
    "absolute_threshold": True,
    "point_sigma": 25 / 512,
    "point_map": "filtered",
    "box_source": "largest_component",
    "box_map": "exclusive",
    "box_jitter": 0.01,
    "mask_threshold": [0.01, 1.0],
    "mask_morphology": [6.5 / 512, 14.5 / 512],
    "mask_operations": ["erode", "dilate", "erode+dilate", "dilate+erode"],
    "trimap_width": [6.5 / 512, 14.5 / 512],
    "trimap_separate_widths": True,
    "trimap_thresholds": [0.05, 0.95],
}
RELEASE_AUGMENT = {
    "crop_scale": [1.0, 1.0],
    "flip": 0.0,
    "color_jitter": 0.0,
    "grey": 0.2,
    "background_blur": 0.5,
    "duplicate_foreground": 1.0,
}


def resolve(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    """What ``mattekit fit <args> --print_config`` resolves (nothing is built)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _at_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the recipes are named relative to the repository root


def assert_release_data(config: dict) -> None:
    prompts, augment = config["data"]["prompts"], config["data"]["augment"]
    # Written as 25 / 512 and 6.5 / 512: the YAML's decimals are those fractions exactly.
    assert {name: prompts[name] for name in RELEASE_PROMPTS} == RELEASE_PROMPTS
    assert {name: augment[name] for name in RELEASE_AUGMENT} == RELEASE_AUGMENT


@pytest.mark.parametrize(
    ("model_config", "family"),
    [("configs/model/sdmatte.yaml", "SDMatte"), ("configs/model/litesdmatte.yaml", "LiteSDMatte")],
)
def test_model_config_with_the_release_recipe_resolves_to_the_release(model_config, family, capsys):
    config = resolve([f"--config={model_config}", RELEASE], capsys)
    assert config["model"]["class_path"].endswith(f".{family}")
    assert config["model"]["init_args"]["variant"] == "sd2"  # the model config's, kept
    assert config["model"]["init_args"]["prompt_kinds"] == ["box"]
    assert (config["data"]["image_size"], config["data"]["eval_image_size"]) == (512, 1024)
    assert_release_data(config)


def test_paper_recipe_after_the_release_changes_the_prompt_mix_and_duplication(capsys):
    config = resolve(["--config=configs/model/sdmatte.yaml", RELEASE, PAPER], capsys)
    assert config["model"]["init_args"]["prompt_kinds"] == ["points", "box", "mask"]
    assert config["data"]["augment"]["duplicate_foreground"] == 0.5
    config["data"]["augment"]["duplicate_foreground"] = 1.0
    assert_release_data(config)  # everything else is the release's


def test_model_configs_leave_the_data_recipe_to_the_recipes(capsys):
    config = resolve(["--config=configs/model/sdmatte.yaml"], capsys)
    assert config["model"]["init_args"]["prompt_kinds"] is None  # the family's default mix
    assert config["data"]["augment"]["duplicate_foreground"] == 0.0
    assert config["data"]["prompts"]["mask_operations"] == ["erode", "dilate"]


def test_cpu_small_grid_order_keeps_the_recipe_and_the_small_sizes(capsys):
    config = resolve(
        [
            "--config=configs/recipes/cpu_small.yaml",
            "--model=sdmatte",
            RELEASE,
            "--model.variant=tiny",
        ],
        capsys,
    )
    assert config["model"]["init_args"]["variant"] == "tiny"
    assert config["model"]["init_args"]["prompt_kinds"] == ["box"]
    assert config["data"]["image_size"] == 128
    assert_release_data(config)


def test_a_repeated_kind_list_weights_the_draw_as_litesdmatte_default_list(capsys):
    # LiteSDMatte/meta_arch.py:35: ["point_mask", "bbox_mask", "mask", "point_mask", "point_mask"]
    kinds = ["points", "box", "mask", "points", "points"]
    config = resolve(["--model=litesdmatte", f"--model.prompt_kinds=[{','.join(kinds)}]"], capsys)
    assert config["model"]["init_args"]["prompt_kinds"] == kinds  # repeats survive the CLI
    check_kinds(kinds, "box", SDMatte.accepted_prompts, "LiteSDMatte")  # and are accepted
    torch.manual_seed(0)
    drawn = random_kinds(20000, kinds)
    assert drawn.count("points") / len(drawn) == pytest.approx(3 / 5, abs=0.01)
    assert drawn.count("box") / len(drawn) == pytest.approx(1 / 5, abs=0.01)
    assert drawn.count("mask") / len(drawn) == pytest.approx(1 / 5, abs=0.01)
