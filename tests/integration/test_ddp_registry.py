"""Every registered family trains, resumes and tests under DDP (2 CPU processes, gloo), in ONE
launch of ``ddp_registry_script.py`` over the whole registry (issue 26: one launch, not one per
family). A new family is covered by registering itself."""

import math
from pathlib import Path

from two_processes import launch

from mattekit.models import list_models

SCRIPT = Path(__file__).with_name("ddp_registry_script.py")
#: SAMA's other schedules (the script's ``EXTRA_CASES``) beside its default, joint.
SAMA_CASES = ("sama[alternate]", "sama[segmentation_sources]")


def expected_cases() -> list[str]:
    names = [
        entry.alias + (f"[{stage}]" if stage else "")
        for entry in list_models()
        for stage in entry.stages or (None,)
    ]
    return [*names, *SAMA_CASES]


def test_every_family_fits_resumes_and_tests_under_ddp(tmp_path: Path):
    results = launch(SCRIPT, tmp_path, timeout=900)
    assert sorted(results) == sorted(expected_cases())
    for name, record in results.items():
        assert record["global_step"] == 2, name
        assert record["resumed_step"] == 3, name
        assert math.isfinite(record["test_sad"]) and record["test_sad"] >= 0, name
        # Only SAMA's segmentation-only run leaves a head unstepped: the matting head, whose
        # zero gradient (kept in the graph for DDP) is dropped, so AdamW skips it.
        unstepped = record["unstepped"]
        if name == "sama[segmentation_sources]":
            assert unstepped and all(p.startswith("model.heads.matting.") for p in unstepped)
        else:
            assert unstepped == [], name
