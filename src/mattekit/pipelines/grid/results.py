"""The results table of an ablation grid: one row per run, one reference row per test set.

The CSV is the record: a rerun reads it to skip the runs it already holds. After every run the
table is rewritten whole (CSV and the Markdown beside it, atomically, by
:func:`mattekit.visualize.write_metrics_table`), so an interrupted grid never leaves half a file.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from mattekit.models.evaluation import REFERENCE_NAME
from mattekit.visualize import markdown_table, write_metrics_table

# The default label of the reference row of a mattekit metrics table, kept in the grid's too;
# a family may name its own (the label converter's input mask): any label ending in
# REFERENCE_SUFFIX is a reference row.
REFERENCE_RUN = REFERENCE_NAME
REFERENCE_SUFFIX = "(reference)"


def is_reference(label: object) -> bool:
    """Whether a row's ``run`` / ``model`` label names a reference row."""
    return str(label).endswith(REFERENCE_SUFFIX)


_LEADING = ("run", "seed")
_DESCRIPTIVE = ("test_set", "preset", "protocol")
_TRAILING = ("wall_s", "run_dir", "error")
_TEXT = {"run_dir", "error", "test_set", "preset", "protocol"}

RunKey = tuple[tuple[str, str], ...]


def run_key(row: dict, key_columns: list[str]) -> RunKey:
    """What identifies a run across reruns: its seed and its rendered grid values.

    A grid key a row lacks reads as "", as its blank CSV cell will: a run recorded before a key
    was added to the grid (or after one was dropped) is not a run of the grid as it is now.
    """
    return tuple((column, str(row.get(column, ""))) for column in ("seed", *key_columns))


def _parse(column: str, value: str, key_columns: set[str]) -> object:
    """A CSV cell back to the type it was written as (grid values stay the strings passed)."""
    if value == "" or column in _TEXT or column in key_columns:
        return value
    if column in _LEADING:
        return int(value) if value.lstrip("-").isdigit() else value
    try:
        return float(value)
    except ValueError:
        return value


def _same_metrics(a: dict, b: dict) -> bool:
    names = set(a) | set(b)
    return all(
        isinstance(a.get(n), float)
        and isinstance(b.get(n), float)
        and math.isclose(a[n], b[n], rel_tol=1e-9, abs_tol=1e-12)
        for n in names
    )


class GridResults:
    """Run rows and reference rows of one grid, read from and written to ``<stem>.csv/.md``.

    Args:
        stem: the output path without suffix (``experiments/results/baseline_prompts``).
        key_columns: the grid's keys (``model.prompt_kinds``, ...), in grid order.
    """

    def __init__(self, stem: Path, key_columns: list[str]) -> None:
        self.markdown_path = Path(f"{stem}.md")
        self.csv_path = Path(f"{stem}.csv")
        self.key_columns = list(key_columns)
        self.runs: list[dict] = []
        self.references: list[dict] = []
        if self.csv_path.exists():
            self._read()

    def _read(self) -> None:
        with self.csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            # Grid keys sit between "seed" and "test_set"; keys dropped from the grid since stay
            # text columns, so their old rows still read as they were recorded.
            if "seed" in header and "test_set" in header:
                recorded = header[header.index("seed") + 1 : header.index("test_set")]
                self.key_columns += [k for k in recorded if k not in self.key_columns]
            keys = set(self.key_columns)
            for raw in reader:
                row = {column: _parse(column, value, keys) for column, value in raw.items()}
                if is_reference(row.get("run")):
                    # Only its label and metrics: the blank run columns are no scores to match.
                    self.references.append({k: v for k, v in row.items() if v != ""})
                else:
                    self.runs.append(row)

    # --- what is recorded ---------------------------------------------------------------------

    def find(self, key: RunKey) -> dict | None:
        """The recorded row (finished or failed) of the run with this key, if any."""
        return next((row for row in self.runs if run_key(row, self.key_columns) == key), None)

    def is_finished(self, key: RunKey) -> bool:
        row = self.find(key)
        return row is not None and not row.get("error")

    def used_indices(self) -> set[int]:
        return {row["run"] for row in self.runs if isinstance(row.get("run"), int)}

    # --- recording ----------------------------------------------------------------------------

    def record(self, row: dict) -> None:
        """Add a run's row, replacing an earlier row of the same run (a failed attempt)."""
        key = run_key(row, self.key_columns)
        self.runs = [r for r in self.runs if run_key(r, self.key_columns) != key]
        self.runs.append(row)

    def test_set_label(
        self,
        name: str,
        preset: str,
        reference: dict[str, float] | None,
        reference_label: str = REFERENCE_RUN,
    ) -> str:
        """The label of the test set whose reference row is ``reference``; adds the row if new.

        Runs on the same test data, scored with the same preset, share one reference row
        (labelled ``reference_label``, the family's). The label is the test data's name, with
        ``#2``, ``#3`` when the same name scores differently (another image size, trimap
        setting or prompt sampling). A family without a reference row (``reference`` None)
        gets the plain name: nothing tells its test sets apart.
        """
        if reference is None:
            return name
        for row in self.references:
            same_name = row["test_set"] == name or str(row["test_set"]).startswith(f"{name}#")
            metrics = {k: v for k, v in row.items() if k not in ("run", *_DESCRIPTIVE)}
            same_reference = row["run"] == reference_label
            if (
                same_name
                and same_reference
                and row["preset"] == preset
                and _same_metrics(metrics, reference)
            ):
                return row["test_set"]
        taken = {row["test_set"] for row in self.references}
        label, count = name, 1
        while label in taken:
            count += 1
            label = f"{name}#{count}"
        self.references.append(
            {"run": reference_label, "test_set": label, "preset": preset, **reference}
        )
        return label

    def failures(self) -> list[dict]:
        return [row for row in self.runs if row.get("error")]

    # --- writing ------------------------------------------------------------------------------

    def _metric_columns(self, rows: list[dict]) -> list[str]:
        """The metric columns of ``rows`` (every column that is not bookkeeping), in order."""
        fixed = {*_LEADING, *self.key_columns, *_DESCRIPTIVE, *_TRAILING}
        seen = (column for row in rows for column in row)
        return [column for column in dict.fromkeys(seen) if column not in fixed]

    def table(self) -> list[dict]:
        """Run rows by index, then the reference rows still in use, every row with every column.

        Every row carries every column in one fixed order, because the writer orders columns
        by first appearance and a failed run (no metrics) may come first.
        """
        runs = sorted(self.runs, key=lambda row: row["run"])
        labels = {row.get("test_set") for row in runs}
        references = [row for row in self.references if row["test_set"] in labels]
        metrics = self._metric_columns(runs + references)
        trailing = [c for c in _TRAILING if c != "error" or any(r.get("error") for r in runs)]
        columns = [*_LEADING, *self.key_columns, *_DESCRIPTIVE, *metrics, *trailing]
        return [{column: row.get(column, "") for column in columns} for row in runs + references]

    def seed_summary(self) -> list[dict]:
        """Per combination of grid values and test set: the seeds and each metric's spread.

        Cells read ``mean ± sample standard deviation`` over the finished runs (just the value
        when there is one). Empty unless some combination has two or more seeds.
        """
        groups: dict[tuple, list[dict]] = {}
        for row in sorted(self.runs, key=lambda row: row["run"]):
            if not row.get("error"):
                values = tuple(row.get(key, "") for key in (*self.key_columns, "test_set"))
                groups.setdefault(values, []).append(row)
        if not any(len(rows) > 1 for rows in groups.values()):
            return []
        summary = []
        for values, rows in groups.items():
            cells = {}
            for name in self._metric_columns(rows):
                numbers = [r[name] for r in rows if isinstance(r.get(name), float)]
                cells[name] = _spread(numbers)
            keys = dict(zip((*self.key_columns, "test_set"), values, strict=True))
            summary.append({**keys, "seeds": len(rows), **cells})
        return summary

    def write(self, preamble: str) -> str:
        """Rewrite the CSV and the Markdown (``preamble`` on top) atomically; return the latter.

        With several seeds per combination the Markdown also summarises them
        (:meth:`seed_summary`) above the table of runs; the CSV holds the runs only.
        """
        summary = self.seed_summary()
        if summary:
            preamble = (
                f"{preamble.rstrip()}\n\n## Mean ± standard deviation over seeds\n\n"
                f"{markdown_table(summary)}\n## Runs"
            )
        return write_metrics_table(self.table(), self.markdown_path, preamble=preamble)


def _spread(numbers: list[float]) -> str:
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"{numbers[0]:.4g}"
    return f"{statistics.mean(numbers):.4g} ± {statistics.stdev(numbers):.2g}"
