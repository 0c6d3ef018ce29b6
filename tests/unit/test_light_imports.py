"""The modules a spawned worker process imports stay light: the benchmark's classical workers
re-import the ``mattekit`` entry point (spawn runs the parent's ``__main__`` again) and their own
module, and each second of import is paid per worker, per method."""

import subprocess
import sys

import pytest

HEAVY = ("lightning", "matplotlib", "torchmetrics")


def imported_heavy_packages(statement: str) -> list[str]:
    code = (
        f"{statement}\nimport sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "statement",
    [
        "import mattekit.cli",
        "import mattekit.pipelines.benchmark.classical_method",
        "from mattekit.data.synthetic import SyntheticSource",
    ],
)
def test_worker_imports_leave_out_lightning_and_plotting(statement: str) -> None:
    assert imported_heavy_packages(statement) == []


def test_data_package_names_resolve_on_first_use() -> None:
    import mattekit.data
    from mattekit.data.datamodule import MattingDataModule
    from mattekit.data.synthetic import SyntheticSource

    assert mattekit.data.MattingDataModule is MattingDataModule
    assert mattekit.data.SyntheticSource is SyntheticSource
    assert set(mattekit.data.__all__) <= set(dir(mattekit.data))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = mattekit.data.Nope


def test_the_cli_still_loads_lightning_for_training_commands() -> None:
    assert "lightning" in imported_heavy_packages(
        "from mattekit.cli import main\nimport mattekit.matting_cli"
    )
