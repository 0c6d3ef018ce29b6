"""Chained stages with a stand-in for the fit process: order, records, reuse and refusal."""

import json
from pathlib import Path

import pytest
import yaml

from mattekit.pipelines.grid import runner as grid_runner
from mattekit.pipelines.grid import stages as grid_stages
from mattekit.pipelines.grid.command import grid_main
from mattekit.pipelines.grid.commands import shared_stage_command
from mattekit.pipelines.grid.process import ProcessFailed
from mattekit.pipelines.grid.runner import ensure_shared_stages, fit_run
from mattekit.pipelines.grid.spec import GridRun, GridSpec, Stage
from mattekit.pipelines.grid.stages import StageConflict

TEACHER = Stage("teacher", ("--model=zim", "--model.objective=segmentation"))
STUDENT = Stage("student", ("--model=zim", "--model.teacher_checkpoint={teacher}"))


class FakeFits:
    """Stands in for the fit process: a checkpoint file in the stage's folder, the call noted."""

    def __init__(self, save_checkpoint: bool = True) -> None:
        self.save_checkpoint, self.calls = save_checkpoint, []

    def __call__(self, args: list[str], summary: Path) -> dict:
        folder = summary.parent
        self.calls.append((folder.name, args))
        checkpoint = folder / "fit" / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(json.dumps(args))
        return {"checkpoint": str(checkpoint) if self.save_checkpoint else ""}

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def fits(monkeypatch) -> FakeFits:
    fake = FakeFits()
    monkeypatch.setattr(grid_stages, "run_process", fake)
    return fake


def chain_spec(*stages: Stage, last_uses: str = "student") -> GridSpec:
    return GridSpec(
        name="g", base=("--model=zim", f"--model.checkpoint={{{last_uses}}}"), stages=stages
    )


def record(root: Path, name: str) -> dict:
    return json.loads((root / "g" / name / f"{name}.json").read_text())


def test_a_chain_is_made_in_order_each_from_the_last(tmp_path: Path, fits: FakeFits):
    made = ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    assert fits.names == ["teacher", "student"]
    teacher = str(tmp_path / "g" / "teacher" / "fit" / "checkpoints" / "last.ckpt")
    assert made["teacher"].checkpoint == teacher and made["student"].made_now
    assert f"--model.teacher_checkpoint={teacher}" in fits.calls[1][1]
    # The record: the command as run, the checkpoint, the making and what it started from.
    student = record(tmp_path, "student")
    assert student["command"] == fits.calls[1][1]
    assert student["checkpoint"] == made["student"].checkpoint
    assert student["inputs"] == {"teacher": record(tmp_path, "teacher")["made_at"]}
    assert record(tmp_path, "teacher")["inputs"] == {}


def test_an_unchanged_chain_is_reused(tmp_path: Path, fits: FakeFits):
    first = ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    again = ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    assert fits.names == ["teacher", "student"]  # nothing fitted the second time
    assert {n: m.checkpoint for n, m in again.items()} == {
        n: m.checkpoint for n, m in first.items()
    }
    assert not any(made.made_now for made in again.values())


def test_a_changed_command_is_refused_before_anything_is_fitted(tmp_path: Path, fits: FakeFits):
    ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    changed = Stage("student", (*STUDENT.args, "--model.sg_weight=1"))
    # A new first stage is not fitted either: the conflict later in the chain is found first.
    extra = Stage("extra", ("--model=zim",))
    uses_extra = Stage("student", (*changed.args, "--x={extra}"))
    for stages in [(TEACHER, changed), (extra, TEACHER, uses_extra)]:
        with pytest.raises(StageConflict, match="'student' made by another command") as error:
            ensure_shared_stages(chain_spec(*stages), tmp_path)
        assert str(tmp_path / "g" / "student") in str(error.value)  # the folder to delete
    assert fits.names == ["teacher", "student"]


def test_a_stage_redone_refuses_the_stages_made_from_it(tmp_path: Path, fits: FakeFits):
    ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    # The teacher's folder deleted (to redo it): the student was made from the old teacher.
    teacher = tmp_path / "g" / "teacher"
    for path in sorted(teacher.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    with pytest.raises(StageConflict, match="another checkpoint of 'teacher', which is to be made"):
        ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    assert fits.names == ["teacher", "student"]  # refused before fitting the teacher
    (tmp_path / "g" / "student" / "student.json").unlink()  # redo the student too
    ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    assert fits.names == ["teacher", "student"] * 2


def test_a_stage_made_again_since_is_a_changed_input(tmp_path: Path, fits: FakeFits):
    ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    path = tmp_path / "g" / "teacher" / "teacher.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "made_at": "later"}))
    with pytest.raises(StageConflict, match="'teacher', which was made again since"):
        ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)


def test_a_lost_checkpoint_is_fitted_again_only_when_needed(tmp_path: Path, fits: FakeFits):
    made = ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    Path(made["teacher"].checkpoint).unlink()  # e.g. to save disk: the runs need the student
    again = ensure_shared_stages(chain_spec(TEACHER, STUDENT), tmp_path)
    assert fits.names == ["teacher", "student"] and not again["student"].made_now
    # A run needing the teacher itself gets it again, in place: but the student on record was
    # made from the lost one, so that is refused.
    both = GridSpec(name="g", base=("{teacher}", "{student}"), stages=(TEACHER, STUDENT))
    with pytest.raises(StageConflict, match="'teacher', which is to be made again"):
        ensure_shared_stages(both, tmp_path)

    # One stage alone (a grid's pretrain) is fitted again in place, under a new identity.
    alone = chain_spec(TEACHER, last_uses="teacher")
    before = record(tmp_path, "teacher")
    ensure_shared_stages(alone, tmp_path)
    assert fits.names == ["teacher", "student", "teacher"]
    assert Path(made["teacher"].checkpoint).is_file()
    assert record(tmp_path, "teacher")["made_at"] != before["made_at"]


def test_a_pretrain_record_from_before_chains_is_recognised(tmp_path: Path, fits: FakeFits):
    pretrain = Stage("pretrain", ("--model=zim",))
    spec = chain_spec(pretrain, last_uses="pretrain")
    folder = tmp_path / "g" / "pretrain"
    folder.mkdir(parents=True)
    checkpoint = folder / "last.ckpt"
    checkpoint.write_bytes(b"")
    old = {
        "command": shared_stage_command(spec, pretrain, folder, {}),
        "checkpoint": str(checkpoint),
    }
    (folder / "pretrain.json").write_text(json.dumps(old))  # no made_at, no inputs
    assert ensure_shared_stages(spec, tmp_path)["pretrain"].checkpoint == str(checkpoint)
    # A later stage may start from it, and is reused on the next call.
    student = Stage("student", ("--model.teacher_checkpoint={pretrain}",))
    ensure_shared_stages(chain_spec(pretrain, student), tmp_path)
    ensure_shared_stages(chain_spec(pretrain, student), tmp_path)
    assert fits.names == ["student"]
    assert record(tmp_path, "student")["inputs"] == {"pretrain": str(checkpoint)}

    changed = chain_spec(Stage("pretrain", ("--model=x",)), last_uses="pretrain")
    with pytest.raises(StageConflict, match="'pretrain' made by another command: mattekit fit"):
        ensure_shared_stages(changed, tmp_path)


def test_a_fit_without_checkpoint_is_a_failure(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(grid_stages, "run_process", FakeFits(save_checkpoint=False))
    with pytest.raises(ProcessFailed, match="stage 'teacher' saved no checkpoint"):
        ensure_shared_stages(chain_spec(TEACHER, last_uses="teacher"), tmp_path)
    assert not (tmp_path / "g" / "teacher" / "teacher.json").exists()  # retried on a rerun


def test_a_run_of_stages_starts_from_the_shared_ones(tmp_path: Path, fits: FakeFits):
    student = Stage("student", ("--model.stage=student", "--model.teacher_checkpoint={teacher}"))
    decoder = Stage("decoder", ("--model.stage=decoder", "--model.student_checkpoint={student}"))
    spec = GridSpec(
        name="g",
        base=("--model=teach",),
        grid={"student:model.sg_weight": (1, 10)},
        stages=(TEACHER,),
        run_stages=(student, decoder),
    )
    shared = ensure_shared_stages(spec, tmp_path)
    runs = [GridRun(i, 0, combination) for i, combination in enumerate(spec.combinations())]
    run_dir = tmp_path / "g" / "1"
    tested, checkpoints = fit_run(spec, runs[1], run_dir, shared)
    assert fits.names == ["teacher", "student", "decoder"]
    student_args, decoder_args = fits.calls[1][1], fits.calls[2][1]
    assert f"--model.teacher_checkpoint={shared['teacher'].checkpoint}" in student_args
    assert "--model.sg_weight=10" in student_args and "--model.sg_weight=10" not in decoder_args
    assert f"--model.student_checkpoint={checkpoints['student']}" in decoder_args
    assert tested == checkpoints["decoder"] == str(run_dir / "decoder/fit/checkpoints/last.ckpt")
    assert checkpoints["teacher"] == shared["teacher"].checkpoint  # for the test's arguments

    # A retried run (its test failed, say) reuses the stages it recorded.
    fit_run(spec, runs[1], run_dir, shared)
    assert fits.names == ["teacher", "student", "decoder"]
    # A run's stages made from another teacher are refused, and the run fails with that.
    other = {"teacher": grid_stages.MadeStage(shared["teacher"].checkpoint, "another making")}
    with pytest.raises(StageConflict, match="'teacher', which was made again since"):
        fit_run(spec, runs[1], run_dir, other)


def test_grid_makes_its_stages_once_and_stops_on_a_conflict(
    tmp_path: Path, fits: FakeFits, monkeypatch, capsys
):
    def stub_run(spec, run, run_dir, results, shared):
        seen.append((spec.base, sorted(shared)))
        return {"run": run.index, "seed": run.seed, **run.overrides, "run_dir": str(run_dir)}

    seen = []
    monkeypatch.setattr(grid_runner, "execute_run", stub_run)
    grid_file = tmp_path / "g.yaml"
    spec = {
        "name": "g",
        "stages": [
            {"name": "teacher", "args": list(TEACHER.args)},
            {"name": "student", "args": list(STUDENT.args)},
        ],
        "base": ["--model=zim", "--model.checkpoint={student}"],
        "grid": {"model.lr": [0.1, 0.2]},
    }
    grid_file.write_text(yaml.safe_dump(spec))
    argv = [str(grid_file), "--runs_root", str(tmp_path / "runs")]
    assert grid_main([*argv, "--dry_run"]) == 0
    planned = capsys.readouterr().out
    assert planned.index("# teacher\nmattekit fit") < planned.index("# student\nmattekit fit")
    assert "'--model.teacher_checkpoint={teacher}'" in planned and fits.calls == []

    assert grid_main(argv) == 0
    student = record(tmp_path / "runs", "student")["checkpoint"]
    assert fits.names == ["teacher", "student"]  # once for both runs
    assert seen == [(("--model=zim", f"--model.checkpoint={student}"), ["student", "teacher"])] * 2

    spec["grid"]["model.lr"].append(0.3)  # a new run: the stages are checked, and reused
    spec["stages"][0]["args"].append("--model.lr=1")
    grid_file.write_text(yaml.safe_dump(spec))
    assert grid_main(argv) == 1
    error = capsys.readouterr().err
    assert "mattekit grid: " in error and "stage 'teacher' made by another command" in error
    assert len(seen) == 2 and fits.names == ["teacher", "student"]
