"""The preset names that signatures take are the names of the shipped presets."""

from __future__ import annotations

from typing import get_args

import pytest
from jsonargparse import ArgumentError, ArgumentParser

from mattekit.metrics.presets import PRESETS, PresetName
from mattekit.models.zim_converter import ZIMLabelConverter


def test_preset_name_lists_exactly_the_shipped_presets():
    assert set(get_args(PresetName)) == set(PRESETS)


def test_a_preset_name_is_parsed_and_an_unknown_one_refused_naming_the_argument():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(ZIMLabelConverter, "model")
    assert parser.parse_args(["--model.metric_preset", "zim"]).model.metric_preset == "zim"
    with pytest.raises(ArgumentError, match=r"model\.metric_preset") as refused:
        parser.parse_args(["--model.metric_preset", "mine"])
    assert "'dim', 'zim', 'sdmatte'" in str(refused.value)  # the accepted names are listed
