"""Grid files: parsing, checks, the Cartesian product, value rendering, stages and placeholders."""

from pathlib import Path

import pytest
import yaml

from mattekit.pipelines.grid.placeholders import fill, placeholders
from mattekit.pipelines.grid.results import GridResults
from mattekit.pipelines.grid.runner import plan_runs
from mattekit.pipelines.grid.spec import GridRun, Stage, load_grid_spec, render_value


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
    runs = plan_runs(spec, GridResults(tmp_path / "results" / "g", list(spec.grid)))
    assert [(r.index, r.seed, r.overrides["model.lr"]) for r in runs] == [
        (0, 3, "0.1"),
        (1, 4, "0.1"),
        (2, 3, "0.2"),
        (3, 4, "0.2"),
    ]


def test_empty_grid_is_one_run_per_seed(tmp_path: Path):
    spec = load_grid_spec(write_grid(tmp_path, {"base": ["--model=baseline"], "seeds": [0, 1]}))
    assert spec.combinations() == [{}]
    assert GridRun(0, 1, {}).stage_override_args("fit") == []


def test_cases_are_explicit_rows_combined_with_the_grid(tmp_path: Path, capsys):
    cases = [
        {"--model.prune": False, "model.loss_weights": {"sg": 0}},
        {"model.projector": False},
        {},
    ]
    grid = {"model.lr": [0.1, 0.2]}
    spec = load_grid_spec(
        write_grid(tmp_path, {"base": ["--model=x"], "cases": cases, "grid": grid})
    )
    assert spec.keys == ["model.prune", "model.loss_weights", "model.projector", "model.lr"]
    assert spec.combinations() == [
        {"model.prune": "false", "model.loss_weights": '{"sg": 0}', "model.lr": "0.1"},
        {"model.prune": "false", "model.loss_weights": '{"sg": 0}', "model.lr": "0.2"},
        {"model.projector": "false", "model.lr": "0.1"},
        {"model.projector": "false", "model.lr": "0.2"},
        {"model.lr": "0.1"},
        {"model.lr": "0.2"},
    ]
    runs = plan_runs(spec, GridResults(tmp_path / "results" / "g", spec.keys))
    assert [run.index for run in runs] == list(range(6))
    assert runs[2].stage_override_args("fit") == ["--model.projector=false", "--model.lr=0.1"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cases": {"model.lr": 1}}, "'cases' must be a list"),
        ({"cases": [1]}, r"cases\[0\] must be a mapping"),
        ({"cases": [{"model.lr": 1}, {"--model.lr": 1}]}, r"cases\[1\] repeats"),
        ({"cases": [{"model.lr": 1}], "grid": {"model.lr": [2]}}, "the grid also varies"),
        ({"cases": [{"decoder:model.lr": 1}]}, "names no run stage"),
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
        ({"pretrain": ["--model=zim"]}, "stage 'pretrain' is given but nothing uses its"),
        ({"base": ["--model.checkpoint={pretrain}"]}, "names none of the grid's stages"),
        (
            {"base": ["--model.checkpoint={pretrain}"], "pretrain": ["--x={pretrain}"]},
            "cannot use its own checkpoint",
        ),
    ],
)
def test_bad_grid_files_name_the_problem(tmp_path: Path, spec, message):
    with pytest.raises(ValueError, match=message):
        load_grid_spec(write_grid(tmp_path, spec))


TEACHER = {"name": "teacher", "args": ["--model=zim"]}
STUDENT = {"name": "student", "args": ["--model=zim", "--model.teacher_checkpoint={teacher}"]}
USES_STUDENT = ["--model=zim", "--model.checkpoint={student}"]


def test_placeholders_are_identifiers_in_braces_only():
    args = ['--data.train={"class_path": "x"}', "--model.lr_multipliers={encoder: 0.1}"]
    assert placeholders([*args, "--a={teacher}/{student}", "--b={teacher}"]) == [
        "teacher",
        "student",
    ]
    assert placeholders(args) == []  # JSON and YAML mappings are not placeholders
    filled = fill(["--a={teacher}", "--b={other}", *args], {"teacher": "t.ckpt"})
    assert filled == ("--a=t.ckpt", "--b={other}", *args)  # unknown names stay as written


def test_stages_parse_in_order_and_fill_base_and_test(tmp_path: Path):
    spec = load_grid_spec(
        write_grid(
            tmp_path,
            {
                "stages": [TEACHER, STUDENT],
                "base": USES_STUDENT,
                "test": ["--model.checkpoint={student}"],
            },
        )
    )
    assert [stage.name for stage in spec.stages] == ["teacher", "student"]
    assert spec.stages[1].uses == ["teacher"] and spec.stages[0].uses == []
    assert spec.stages_the_runs_use == {"student"}
    filled = spec.with_checkpoints({"teacher": "t.ckpt", "student": "s.ckpt"})
    assert filled.base == ("--model=zim", "--model.checkpoint=s.ckpt")
    assert filled.test == ("--model.checkpoint=s.ckpt",)
    assert filled.stages == spec.stages  # stages are filled when made, from their records


def test_pretrain_is_the_one_stage_named_pretrain(tmp_path: Path):
    base = ["--model=zim", "--model.checkpoint={pretrain}"]
    old = load_grid_spec(write_grid(tmp_path, {"pretrain": ["--model=zim"], "base": base}))
    new = load_grid_spec(
        write_grid(
            tmp_path, {"stages": [{"name": "pretrain", "args": ["--model=zim"]}], "base": base}
        )
    )
    assert old == new and old.stages == (Stage("pretrain", ("--model=zim",)),)


def test_run_stages_and_scoped_grid_keys(tmp_path: Path):
    spec = load_grid_spec(
        write_grid(
            tmp_path,
            {
                "stages": [TEACHER],
                "base": ["--model=zim"],
                "run_stages": [
                    {"name": "student", "args": ["--model.teacher_checkpoint={teacher}"]},
                    {"name": "decoder", "args": ["--model.student_checkpoint={student}"]},
                ],
                "grid": {"student:--model.sg_weight": [1, 10], "model.lr": [0.1]},
            },
        )
    )
    assert [stage.name for stage in spec.run_stages] == ["student", "decoder"]
    assert list(spec.grid) == ["student:model.sg_weight", "model.lr"]  # dashes dropped after ":"
    assert spec.stages_the_runs_use == {"teacher"}
    run = GridRun(0, 0, spec.combinations()[1])
    # A scoped key reaches its stage only, after the keys of every stage (so it wins).
    assert run.stage_override_args("student") == ["--model.lr=0.1", "--model.sg_weight=10"]
    assert run.stage_override_args("decoder") == ["--model.lr=0.1"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"pretrain": ["--model=zim"], "stages": [TEACHER]}, "not both"),
        ({"stages": {"teacher": []}}, "'stages' must be a list"),
        ({"stages": [{"name": "teacher", "argz": []}]}, "keys 'name' and 'args'"),
        ({"stages": [{"args": []}]}, "keys 'name' and 'args'"),
        ({"stages": [{"name": "1st", "args": []}]}, "must be an identifier"),
        ({"stages": [{"name": "a b", "args": []}]}, "must be an identifier"),
        ({"stages": [{"name": "teacher", "args": "--model=zim"}]}, "'args' must be a list"),
        ({"stages": [TEACHER, TEACHER], "base": ["{teacher}"]}, "must be unique"),
        # Order: a stage can only start from one made before it, so a cycle cannot be written.
        ({"stages": [STUDENT, TEACHER], "base": USES_STUDENT}, "made after it"),
        (
            {
                "stages": [
                    {"name": "a", "args": ["--x={b}"]},
                    {"name": "b", "args": ["--x={a}"]},
                ],
                "base": ["--x={b}"],
            },
            "stage 'a' uses {b}, which is made after it",
        ),
        ({"stages": [{"name": "a", "args": ["--x={a}"]}], "base": ["{a}"]}, "its own checkpoint"),
        ({"stages": [TEACHER, {"name": "s", "args": ["{techer}"]}]}, "{techer}, which names no"),
        ({"stages": [TEACHER], "base": ["{teacher}", "{pupil}"]}, "'base' uses {pupil}"),
        ({"stages": [TEACHER, STUDENT], "base": ["{teacher}"]}, "'student' is given but nothing"),
        # Run stages: base and test are shared by all of them, so cannot name one.
        (
            {"run_stages": [{"name": "a", "args": []}], "test": ["--x={a}"]},
            "'test' uses {a}, which names none of the grid's stages",
        ),
        ({"run_stages": [{"name": "test", "args": []}]}, "cannot be named test"),
        (
            {"stages": [{"name": "a", "args": []}], "run_stages": [{"name": "a", "args": ["{a}"]}]},
            "must be unique",
        ),
        (
            {"run_stages": [{"name": "a", "args": []}, {"name": "b", "args": []}]},
            "'a' is given but nothing uses its checkpoint",
        ),
        ({"run_stages": [{"name": "a", "args": []}], "grid": {"b:model.x": [1]}}, "names no run"),
        ({"grid": {"student:model.x": [1]}}, "names no run stage"),
    ],
)
def test_bad_stages_name_the_problem(tmp_path: Path, spec, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_grid_spec(write_grid(tmp_path, spec))
