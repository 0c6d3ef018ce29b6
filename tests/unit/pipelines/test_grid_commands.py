"""The command lines of a grid: fits, tests, shared and run stages, and the results' header."""

from pathlib import Path

# The module, not its test_command by name: pytest would collect that as a test.
from mattekit.pipelines.grid import commands as grid_commands
from mattekit.pipelines.grid.commands import describe, fit_command, run_lines, shared_stage_command
from mattekit.pipelines.grid.spec import GridRun, GridSpec, Stage


def test_fit_and_test_commands():
    spec = GridSpec(
        name="g",
        base=("--config=configs/quickstart.yaml", "--trainer.max_epochs=1"),
        grid={"model.prompt_kinds": (["box", "points"],), "data.name": ("a b",)},
        test=("--config=configs/data/alphamatting.yaml",),
    )
    run = GridRun(5, 7, spec.combinations()[0])
    fit = fit_command(spec, run, "runs/g/5")
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

    test = grid_commands.test_command(spec, run, "runs/g/5", "runs/g/5/fit/checkpoints/last.ckpt")
    assert test[0] == "test"
    extras = test.index("--config=configs/data/alphamatting.yaml")
    assert extras > test.index("--data.name=a b")  # the test extras are the most specific
    assert "--trainer.logger.version=test" in test and "--seed_everything=7" in test
    assert test[-1] == "--ckpt_path=runs/g/5/fit/checkpoints/last.ckpt"


def test_shared_stage_command_gets_its_own_args_and_the_first_seed():
    teacher = Stage("teacher", ("--model=zim", "--model.objective=segmentation"))
    student = Stage("student", ("--model=zim", "--model.teacher_checkpoint={teacher}"))
    spec = GridSpec(name="g", base=("--model.lr=1",), seeds=(3, 4), stages=(teacher, student))
    command = shared_stage_command(spec, student, "runs/g/student", {"teacher": "t.ckpt"})
    assert command[:4] == [
        "fit",
        "--trainer.enable_progress_bar=false",
        "--model=zim",
        "--model.teacher_checkpoint=t.ckpt",
    ]
    assert "--model.lr=1" not in command  # a shared stage is its own command, not the runs'
    assert "--trainer.default_root_dir=runs/g/student" in command
    assert "--trainer.logger.version=fit" in command
    assert command[-1] == "--seed_everything=3"  # the first seed


def test_run_stage_commands_chain_their_checkpoints():
    student = Stage("student", ("--model.stage=student", "--model.teacher_checkpoint={teacher}"))
    decoder = Stage("decoder", ("--model.stage=decoder", "--model.student_checkpoint={student}"))
    spec = GridSpec(
        name="g",
        base=("--model=teach",),
        grid={"student:model.sg_weight": (1,), "model.lr": (0.1,)},
        seeds=(2,),
        test=("--data.seed=100",),
        stages=(Stage("teacher", ()),),
        run_stages=(student, decoder),
    )
    run = GridRun(4, 2, spec.combinations()[0])
    checkpoints = {"teacher": "t.ckpt", "student": "runs/g/4/student/s.ckpt"}
    fit = fit_command(spec, run, "runs/g/4", student, checkpoints)
    assert fit[2:7] == [
        "--model=teach",  # base, then the stage's arguments, then the overrides
        "--model.stage=student",
        "--model.teacher_checkpoint=t.ckpt",
        "--model.lr=0.1",
        "--model.sg_weight=1",  # scoped to the student
    ]
    assert "--trainer.default_root_dir=runs/g/4/student" in fit  # fit in <run>/student/fit/

    fit = fit_command(spec, run, "runs/g/4", decoder, checkpoints)
    assert "--model.student_checkpoint=runs/g/4/student/s.ckpt" in fit
    assert "--model.sg_weight=1" not in fit and "--model.lr=0.1" in fit

    # The test builds the last stage's model: its arguments and overrides, then the extras.
    test = grid_commands.test_command(spec, run, "runs/g/4", "d.ckpt", checkpoints)
    assert test[2:6] == [
        "--model=teach",
        "--model.stage=decoder",
        "--model.student_checkpoint=runs/g/4/student/s.ckpt",
        "--model.lr=0.1",
    ]
    assert test.index("--data.seed=100") > test.index("--model.lr=0.1")
    assert "--trainer.default_root_dir=runs/g/4" in test and test[-1] == "--ckpt_path=d.ckpt"

    lines = run_lines(spec, run, "runs/g/4")
    assert len(lines) == 3  # two fits and the test, checkpoints still placeholders
    assert "--model.student_checkpoint={student}" in lines[1]
    assert lines[2].endswith("'--ckpt_path=<best, else last checkpoint of decoder>'")


def test_header_lists_the_stages_and_the_run_commands(tmp_path: Path):
    teacher = Stage("teacher", ("--model=zim",))
    student = Stage("student", ("--model=zim", "--model.teacher_checkpoint={teacher}"))
    spec = GridSpec(
        name="g",
        base=("--model=zim", "--model.checkpoint={student}"),
        grid={"model.lr": (0.1, 0.2)},
        seeds=(0, 1),
        stages=(teacher, student),
    )
    header = describe(spec, tmp_path / "g.yaml", Path("runs"))
    assert header.startswith("# Grid `g`")
    fit = "    mattekit fit --trainer.enable_progress_bar=false --model=zim"
    assert f"{fit} '--model.checkpoint={{student}}' '--model.lr=<model.lr>'" in header
    assert "--seed_everything=<seed>" in header
    assert header.index("of stage `teacher`") < header.index("of stage `student`")
    assert "--trainer.default_root_dir=runs/g/student" in header
    assert "`model.lr` in `0.1`, `0.2`; seeds 0, 1." in header
