"""Interactive use: a photo is encoded once and every click re-runs only the prompt decoder,
giving exactly what the whole forward gives; families without that split run their forward."""

import numpy as np
import pytest
import torch

from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.interactive import InteractiveSession
from mattekit.inference.prompted_images import prompted_sample
from mattekit.inference.prompts import UserPrompt


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    image = np.full((48, 80, 3), 40, np.uint8)
    image[10:40, 20:60] = rng.integers(150, 255, (30, 40, 3), dtype=np.uint8)
    return image


def whole_forward(runner: CheckpointModel, image, prompt: UserPrompt) -> np.ndarray:
    from mattekit.data.sample import collate_samples
    from mattekit.data.source import MattingSource

    class One(MattingSource):
        def __len__(self):
            return 1

        def load(self, index, rng):
            return prompted_sample("photo", image, prompt, "demo")

    runner.model.evaluate_with(prompt.kind_for(runner.accepted_prompts))
    with torch.inference_mode():
        return runner.alpha(collate_samples([runner.dataset(One("demo"))[0]]))


@pytest.mark.parametrize("alias", ["zim", "sama"])
def test_clicks_rerun_only_the_decoder_and_match_the_whole_forward(alias, tiny_checkpoint, photo):
    runner = CheckpointModel(tiny_checkpoint(alias), image_size=64)
    session = InteractiveSession(runner)
    session.set_image(photo)
    calls = []
    encoder = runner.model.model.encode
    runner.model.model.encode = lambda *a: calls.append(1) or encoder(*a)
    prompts = [
        UserPrompt(points=((40, 25, 1),)),
        UserPrompt(points=((40, 25, 1), (5, 5, 0))),
        UserPrompt(box=(18, 8, 62, 42)),
    ]
    for prompt in prompts:
        alpha = session.predict(prompt)
        assert alpha.shape == (48, 80) and alpha.dtype == np.float32
        runner.model.model.encode = encoder
        expected = whole_forward(runner, photo, prompt)
        runner.model.model.encode = lambda *a: calls.append(1) or encoder(*a)
        np.testing.assert_allclose(alpha, expected, atol=1e-5)
    assert calls == []  # no click encoded the photo again
    session.set_image(photo.copy())  # the same photo: not encoded again
    assert session.encodings == 1
    session.set_image(photo[::-1].copy())
    assert session.encodings == 2


def test_families_without_a_split_run_their_forward(tiny_checkpoint, photo):
    runner = CheckpointModel(tiny_checkpoint("baseline"), image_size=64)
    session = InteractiveSession(runner)
    with pytest.raises(RuntimeError, match="set_image"):
        session.predict(UserPrompt(box=(0, 0, 5, 5)))
    session.set_image(photo)
    prompt = UserPrompt(points=((40, 25, 1),))
    np.testing.assert_allclose(session.predict(prompt), whole_forward(runner, photo, prompt))
    with pytest.raises(ValueError, match="the prompt has text"):
        session.predict(UserPrompt(text="the cat"))
