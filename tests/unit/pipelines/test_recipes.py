"""The shared recipes (``configs/recipes/``) and the experiment files that include them.

Each recipe resolves through the CLI with its own values; an argument after it wins over it (the
order the experiment files rely on); and every experiment file that names a recipe resolves its
first command, as the grid (or the benchmark) builds it, with the recipe's values wherever no
later argument sets them.
"""

from pathlib import Path

import pytest
import yaml

from mattekit.cli import main
from mattekit.pipelines.grid.commands import fit_command, stage_fit_command
from mattekit.pipelines.grid.spec import GridRun, Stage, load_grid_spec

ROOT = Path(__file__).parents[3]
RECIPES = sorted((ROOT / "configs" / "recipes").glob("*.yaml"))
CPU_SMALL = "configs/recipes/cpu_small.yaml"
USERS = sorted(
    path for path in (ROOT / "experiments").glob("*.yaml") if "configs/recipes/" in path.read_text()
)


def resolve(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    """The configuration ``mattekit <args> --print_config`` resolves (nothing is built)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"data": {"image_size": 128}}`` -> ``{"data.image_size": 128}``; a ``class_path``
    mapping is one leaf per init argument, as on the command line (``model.lr``)."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if key == "init_args":
            flat.update(leaves(value, prefix))
        elif isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def lookup(config: dict, dotted: str) -> object:
    """A resolved value by its command-line name (``model.lr`` is under ``init_args``)."""
    node: object = config
    for part in dotted.split("."):
        assert isinstance(node, dict), dotted
        node = node[part] if part in node else node["init_args"][part]
    return node


def first_command(path: Path) -> list[str]:
    """The first fit the file makes: its first stage, else its first run's (first) fit."""
    if path.stem.startswith("benchmark"):
        first = yaml.safe_load(path.read_text())["stages"][0]
        return stage_fit_command(Stage(first["name"], tuple(first["args"])), "runs/r", {}, 0)
    spec = load_grid_spec(path)
    if spec.stages:
        return stage_fit_command(spec.stages[0], "runs/r", {}, spec.seeds[0])
    run = GridRun(0, spec.seeds[0], spec.combinations()[0])
    return fit_command(spec, run, "runs/r", *spec.run_stages[:1])


@pytest.fixture(autouse=True)
def _at_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # The experiment files name the recipes relative to the repository root, as run there.
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_recipe_resolves_to_its_own_values(recipe: Path, capsys):
    content = yaml.safe_load(recipe.read_text())
    named = "class_path" in content.get("model", {})  # a recipe may set init_args only
    args = ["fit", f"--config={recipe}"] + ([] if named else ["--model=baseline"])
    config = resolve(args, capsys)
    for name, value in leaves(content).items():
        assert lookup(config, name) == value, f"{recipe.name}: {name}"


def test_a_later_argument_overrides_the_recipe_and_an_earlier_one_does_not(capsys):
    after = resolve(
        ["fit", "--model=baseline", f"--config={CPU_SMALL}", "--data.image_size=64"], capsys
    )
    before = resolve(
        ["fit", "--model=baseline", "--data.image_size=64", f"--config={CPU_SMALL}"], capsys
    )
    assert after["data"]["image_size"] == 64
    assert before["data"]["image_size"] == 128
    # A recipe without a model leaves the model named before it as it was.
    assert after["model"]["class_path"].endswith("Baseline")


def test_the_recipes_are_used():
    named = {recipe.name for path in USERS for recipe in RECIPES if recipe.name in path.read_text()}
    assert named == {recipe.name for recipe in RECIPES}


@pytest.mark.parametrize("path", USERS, ids=lambda path: path.name)
def test_experiment_first_command_resolves_with_its_recipes(path: Path, capsys):
    command = first_command(path)
    config = resolve(command, capsys)
    recipes = [(i, arg.split("=", 1)[1]) for i, arg in enumerate(command) if "/recipes/" in arg]
    assert recipes, f"{path.name}: its first command names no recipe"
    for i, recipe in recipes:
        # What a later argument or a later config file sets is that argument's, not the recipe's.
        later = {arg.split("=", 1)[0][2:] for arg in command[i + 1 :]}
        for _, other in (r for r in recipes if r[0] > i):
            later |= set(leaves(yaml.safe_load(Path(other).read_text())))
        for name, value in leaves(yaml.safe_load(Path(recipe).read_text())).items():
            if name not in later:
                assert lookup(config, name) == value, f"{path.name}: {name} from {recipe}"
