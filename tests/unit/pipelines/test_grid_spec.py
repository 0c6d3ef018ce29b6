"""Grid files: parsing, checks, the Cartesian product, value rendering and the commands."""

import json
from pathlib import Path

import pytest
import yaml

from mattekit.pipelines import grid
from mattekit.pipelines.grid_results import GridResults
from mattekit.pipelines.grid_spec import GridRun, load_grid_spec, render_value


def write_grid(tmp_path: Path, spec: dict, name: str = "ablation.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (["box"], '["box"]'),
        (["box", "points", "mask"], '["box", "points", "mask"]'),
        ([[1, 2], []], "[[1, 2], []]"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0.0, "0.0"),
        (1e-4, "0.0001"),
        (3, "3"),
        ("the red blob", "the red blob"),  # one argument, spaces and all (no shell in between)
        ("[box]", "[box]"),  # strings go verbatim: the parser reads this one as a list
        (
            {"class_path": "a.B", "init_args": {"x": 1}},
            '{"class_path": "a.B", "init_args": {"x": 1}}',
        ),
    ],
)
def test_render_value(value, rendered):
    assert render_value(value) == rendered


def test_rendered_values_parse_back_to_the_yaml_values():
    # jsonargparse reads command-line values as YAML; JSON is YAML.
    for value in (["box", "points"], True, None, 0.5, [[1], {"a": None}]):
        assert yaml.safe_load(render_value(value)) == value


def test_product_order_and_defaults(tmp_path: Path):
    path = write_grid(
        tmp_path,
        {
            "base": ["--model=baseline", "--trainer.max_epochs=1"],
            "grid": {
                "model.prompt_kinds": [["box"], ["points"]],
                "--model.laplacian_weight": [0.0, 1.0, None],
            },
        },
    )
    spec = load_grid_spec(path)
    assert spec.name == "ablation"  # the file's stem when no name is given
    assert spec.seeds == (0,) and spec.test == ()
    assert list(spec.grid) == ["model.prompt_kinds", "model.laplacian_weight"]  # dashes dropped
    combos = spec.combinations()
    assert len(combos) == 6
    assert combos[0] == {"model.prompt_kinds": '["box"]', "model.laplacian_weight": "0.0"}
    assert combos[2] == {"model.prompt_kinds": '["box"]', "model.laplacian_weight": "null"}
    assert combos[3]["model.prompt_kinds"] == '["points"]'  # the first key varies slowest


def test_seeds_multiply_runs_and_indices_follow_the_product(tmp_path: Path):
    path = write_grid(
        tmp_path, {"name": "g", "base": [], "seeds": [3, 4], "grid": {"model.lr": [0.1, 0.2]}}
    )
    spec = load_grid_spec(path)
    runs = grid.plan_runs(spec, GridResults(tmp_path / "results" / "g", list(spec.grid)))
    assert [(r.index, r.seed, r.overrides["model.lr"]) for r in runs] == [
        (0, 3, "0.1"),
        (1, 4, "0.1"),
        (2, 3, "0.2"),
        (3, 4, "0.2"),
    ]


def test_empty_grid_is_one_run_per_seed(tmp_path: Path):
    spec = load_grid_spec(write_grid(tmp_path, {"base": ["--model=baseline"], "seeds": [0, 1]}))
    assert spec.combinations() == [{}]
    assert GridRun(0, 1, {}).override_args == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grids": {}}, "unknown keys"),
        ({"grid": {"model.lr": 0.1}}, "non-empty list"),
        ({"grid": {"model.lr": []}}, "non-empty list"),
        ({"grid": {"model.lr": [1, "1"]}}, "twice"),
        ({"grid": [1, 2]}, "'grid' must map"),
        ({"seeds": [0, 0]}, "twice"),
        ({"seeds": 0}, "'seeds'"),
        ({"seeds": ["a"]}, "'seeds'"),
        ({"base": "--model=baseline"}, "'base' must be a list"),
        ({"test": [1]}, "'test' must be a list"),
        ({"pretrain": ["--model=zim"]}, "no base or test argument uses its checkpoint"),
        ({"base": ["--model.checkpoint={pretrain}"]}, "there is no 'pretrain' run"),
        (
            {"base": ["--model.checkpoint={pretrain}"], "pretrain": ["--x={pretrain}"]},
            "cannot use its own checkpoint",
        ),
    ],
)
def test_bad_grid_files_name_the_problem(tmp_path: Path, spec, message):
    with pytest.raises(ValueError, match=message):
        load_grid_spec(write_grid(tmp_path, spec))


def test_fit_and_test_commands(tmp_path: Path):
    spec = load_grid_spec(
        write_grid(
            tmp_path,
            {
                "base": ["--config=configs/quickstart.yaml", "--trainer.max_epochs=1"],
                "grid": {"model.prompt_kinds": [["box", "points"]], "data.name": ["a b"]},
                "test": ["--config=configs/data/alphamatting.yaml"],
            },
        )
    )
    run = GridRun(5, 7, spec.combinations()[0])
    fit = grid.fit_command(spec, run, "runs/g/5")
    assert fit[:4] == [
        "fit",
        "--trainer.enable_progress_bar=false",
        "--config=configs/quickstart.yaml",
        "--trainer.max_epochs=1",
    ]
    # Overrides come after the base (they win), one argument each, spaces kept.
    assert fit[4:6] == ['--model.prompt_kinds=["box", "points"]', "--data.name=a b"]
    assert "--trainer.default_root_dir=runs/g/5" in fit
    assert "--trainer.logger.save_dir=runs/g/5" in fit
    assert "--trainer.logger.version=fit" in fit
    assert fit[-1] == "--seed_everything=7"

    test = grid.test_command(spec, run, "runs/g/5", "runs/g/5/fit/checkpoints/last.ckpt")
    assert test[0] == "test"
    extras = test.index("--config=configs/data/alphamatting.yaml")
    assert extras > test.index("--data.name=a b")  # the test extras are the most specific
    assert "--trainer.logger.version=test" in test and "--seed_everything=7" in test
    assert test[-1] == "--ckpt_path=runs/g/5/fit/checkpoints/last.ckpt"


def test_pretrain_checkpoint_fills_the_runs_arguments(tmp_path: Path):
    spec = load_grid_spec(
        write_grid(
            tmp_path,
            {
                "base": ["--model=zim", "--model.checkpoint={pretrain}"],
                "pretrain": ["--model=zim", "--model.objective=segmentation"],
                "seeds": [3, 4],
                "test": ["--model.checkpoint={pretrain}"],
            },
        )
    )
    command = grid.pretrain_command(spec, "runs/g/pretrain")
    assert command[0] == "fit" and "--model.objective=segmentation" in command
    assert command[-1] == "--seed_everything=3"  # the first seed
    assert "--trainer.default_root_dir=runs/g/pretrain" in command
    filled = spec.with_pretrained("runs/g/pretrain/fit/checkpoints/last.ckpt")
    assert filled.base[1] == "--model.checkpoint=runs/g/pretrain/fit/checkpoints/last.ckpt"
    assert filled.test == ("--model.checkpoint=runs/g/pretrain/fit/checkpoints/last.ckpt",)
    assert spec.base[1] == "--model.checkpoint={pretrain}"  # the spec itself is unchanged


def test_a_changed_pretrain_command_is_not_silently_reused(tmp_path: Path):
    spec_file = write_grid(
        tmp_path,
        {"name": "g", "base": ["--model.checkpoint={pretrain}"], "pretrain": ["--model=zim"]},
    )
    spec = load_grid_spec(spec_file)
    pretrain_dir = tmp_path / "runs" / "g" / "pretrain"
    pretrain_dir.mkdir(parents=True)
    checkpoint = pretrain_dir / "last.ckpt"
    checkpoint.write_bytes(b"")
    made = {"command": grid.pretrain_command(spec, pretrain_dir), "checkpoint": str(checkpoint)}
    (pretrain_dir / "pretrain.json").write_text(json.dumps(made))
    assert grid.ensure_pretrained(spec, tmp_path / "runs") == str(checkpoint)

    changed = load_grid_spec(
        write_grid(
            tmp_path,
            {"name": "g", "base": ["--model.checkpoint={pretrain}"], "pretrain": ["--model=x"]},
        )
    )
    with pytest.raises(ValueError, match="another pretraining command"):
        grid.ensure_pretrained(changed, tmp_path / "runs")
