"""Interactive use: a photo is encoded once and every click re-runs only the prompt decoder,
giving exactly what the whole forward gives; families without that split run their forward."""

import numpy as np
import pytest
import torch

from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.interactive import InteractiveSession
from mattekit.models import MODELS, MattingModule
from mattekit.prompts import with_kind
from mattekit.prompts.photo_samples import prompted_sample
from mattekit.prompts.user import UserPrompt


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

    with torch.inference_mode():
        batch = collate_samples([runner.dataset(One("demo"))[0]])
        return runner.alpha(with_kind(batch, prompt.kind_for(runner.accepted_prompts)))


#: Families whose image part runs once per photo (:meth:`MattingModule.encode_image`).
SPLIT = [
    alias
    for alias, entry in MODELS.items()
    if entry.cls.encode_image is not MattingModule.encode_image
]


@pytest.mark.parametrize("alias", SPLIT)
def test_clicks_rerun_only_the_decoder_and_match_the_whole_forward(
    alias, tiny_checkpoint, photo, user_prompt, tmp_path
):
    runner = CheckpointModel(tiny_checkpoint(alias))
    session = InteractiveSession(runner)
    session.set_image(photo)
    calls = []
    encode = runner.model.encode_image
    prompts = [user_prompt(kind, tmp_path, photo.shape[:2]) for kind in runner.accepted_prompts]
    prompts.append(UserPrompt(box=(18, 8, 62, 42)))
    for prompt in prompts:
        runner.model.encode_image = lambda *a: calls.append(1) or encode(*a)
        alpha = session.predict(prompt)
        assert alpha.shape == (48, 80) and alpha.dtype == np.float32
        runner.model.encode_image = encode
        expected = whole_forward(runner, photo, prompt)
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
