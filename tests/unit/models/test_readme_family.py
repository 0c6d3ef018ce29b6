"""The README's shortest complete family really is one: it trains and evaluates."""

import re
from pathlib import Path

import torch

README = Path(__file__).parents[3] / "README.md"


def test_the_readme_example_family_trains(synthetic_batch, train_on_batch):
    section = README.read_text().split("## Adding a family", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    module = namespace["BoxNet"](lr=1e-2)
    batch = synthetic_batch(32, 4)
    torch.manual_seed(0)
    losses = train_on_batch(module, batch, steps=30)
    assert losses[-1] < losses[0]
    assert module.eval()(batch)["alpha"].shape == batch.alpha.shape
