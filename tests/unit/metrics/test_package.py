"""mattekit.metrics resolves its names on first use, and each is the object, not a submodule."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types


def test_every_name_is_its_object_even_after_the_submodules_are_imported():
    # A submodule import binds the submodule on the package: `object_size` (module and
    # function) must still give the function.
    for module in ("matting", "object_size", "presets", "segmentation"):
        importlib.import_module(f"mattekit.metrics.{module}")
    import mattekit.metrics

    for name in mattekit.metrics.__all__:
        value = getattr(mattekit.metrics, name)
        assert not isinstance(value, types.ModuleType), name
    from mattekit.metrics.object_size import object_size

    assert mattekit.metrics.object_size is object_size


def test_the_preset_names_do_not_import_torchmetrics():
    code = (
        "from mattekit.metrics.presets import PresetName\nimport sys\n"
        "print('torchmetrics' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
