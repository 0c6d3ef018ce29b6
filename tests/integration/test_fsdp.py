"""The Stable Diffusion families train, save one checkpoint file, resume and test under FSDP
(2 CPU processes, gloo), in ONE launch of ``fsdp_script.py`` (issue 26, item 4)."""

import math
from pathlib import Path

from two_processes import launch

SCRIPT = Path(__file__).with_name("fsdp_script.py")
CASES = ["litesdmatte", "sdmatte", "teachmatte[student]", "teachmatte[teacher]"]
#: The root unit's module: the family's LightningModule.
ROOT_UNIT = {"sdmatte": "SDMatte", "litesdmatte": "LiteSDMatte", "teachmatte": "TeachMatte"}
#: The frozen parts FSDP must leave whole (ignored modules), per case.
FROZEN = {
    "sdmatte": [],  # the tiny variant's autoencoder starts random: it trains
    "litesdmatte": ["teacher"],
    "teachmatte[teacher]": ["model.text_encoder", "model.vae"],
    "teachmatte[student]": ["model.text_encoder", "model.vae", "teacher"],
}


def test_sd_families_fit_save_one_file_resume_and_test_under_fsdp(tmp_path: Path):
    results = launch(SCRIPT, tmp_path, timeout=600)
    assert sorted(results) == CASES
    for name, record in results.items():
        assert record["global_step"] == 2 and record["resumed_step"] == 3, name
        # AdamW's state came back from the file: its third step, not a first one.
        assert record["adam_steps"] == [3], name
        # One file whose state dict is what one process's module saves.
        assert record["checkpoint_is_file"] and record["loaded_equal"], name
        assert record["missing"] == record["unexpected"] == record["reshaped"] == [], name
        # Each declared block is its own unit; the rest trains in the root unit (and FSDP wraps
        # BatchNorm layers alone under its mixed-precision policy).
        assert record["blocks"] > 0 and record["block_units"] == record["blocks"], name
        root = ROOT_UNIT[name.split("[")[0]]
        assert record["other_units"] in ([root], sorted([root, "BatchNorm2d"])), name
        # Frozen parts stay whole on each process; what trains is split in halves.
        assert record["frozen"] == FROZEN[name] and record["frozen_reshaped"] == [], name
        assert record["local_fraction"] == [0.5, 0.5], name
        assert record["group_mismatches"] == [], name
        assert math.isfinite(record["test_sad"]) and record["test_sad"] >= 0, name
