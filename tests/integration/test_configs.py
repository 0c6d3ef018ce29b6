"""Every YAML under configs/ parses through the CLI (without instantiating data folders)."""

from pathlib import Path

import pytest
import yaml

from mattekit.cli import main

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_parses(config: Path, capsys):
    content = yaml.safe_load(config.read_text())
    args = ["fit", "--config", str(config)]
    if "class_path" not in content.get("model", {}):  # a recipe may set init_args only
        args += ["--model", "baseline"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = content.get("model", {}).get("class_path", "Baseline")
    assert printed["model"]["class_path"].endswith(expected.rsplit(".", 1)[-1])
    assert "data" in printed and "trainer" in printed


def test_print_config_shows_model_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--model", "baseline", "--model.depth=2", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["depth"] == 2
    assert printed["model"]["init_args"]["metric_preset"] == "dim"
    assert printed["data"]["prompts"]["point_sigma"] == pytest.approx(0.05)
