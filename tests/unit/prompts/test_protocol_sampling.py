"""A named protocol reaches the batch: the DataModule's evaluation splits prompt as the release
does, training keeps the run's sampler, and scores follow the protocol's quantisation."""

import numpy as np
import pytest
import torch

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.models.evaluation import scored_pairs
from mattekit.prompts.protocols import get_protocol


class TwoBlobs(MattingSource):
    """One 32 x 48 sample: a 10 x 10 opaque square and, apart from it, a 1-pixel speck (the
    release boxes the square alone: 100 >= 10 x 1)."""

    def __len__(self) -> int:
        return 1

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        alpha = np.zeros((32, 48), np.float32)
        alpha[4:14, 6:16] = 1.0
        alpha[28, 44] = 0.5
        image = np.full((32, 48, 3), 128, np.uint8)
        return RawSample(f"blobs{index}", image, alpha)


def evaluation_item(protocol: str | None) -> dict:
    data = MattingDataModule(
        test=TwoBlobs("blobs"), image_size=(32, 48), eval_image_size=(32, 48), num_workers=0,
        protocol=protocol,
    )  # fmt: skip
    return data.dataset("test")[0]


def test_the_sdmatte_protocol_prompts_as_the_release():
    item = evaluation_item("sdmatte")
    # The largest component's box, corners inclusive, and the exclusive map [y0:y1, x0:x1].
    assert item["box"].tolist() == [6.0, 4.0, 15.0, 13.0]
    expected = torch.zeros(1, 32, 48)
    expected[0, 4:13, 6:15] = 1
    assert torch.equal(item["box_map"], expected)
    # Ten distinct clicks from alpha > 0.8 (the square's 100 pixels), no negative ones.
    clicks = item["points"][item["point_labels"] == 1]
    assert len(clicks) == 10 and (item["point_labels"] != 0).all()
    assert len({tuple(c.tolist()) for c in clicks}) == 10
    assert all(6 <= x <= 15 and 4 <= y <= 13 for x, y in clicks.tolist())
    # The filtered map: each click's blur divided by its own max, so 1 at every click here
    # (the square lies far enough from the border for the mirrored mass not to move a peak).
    values = item["point_map"][0, clicks[:, 1].long(), clicks[:, 0].long()]
    assert torch.allclose(values, torch.ones(10), atol=1e-6)


def test_without_a_protocol_evaluation_uses_the_runs_sampler():
    item = evaluation_item(None)
    *_, x1, y1 = item["box"].tolist()
    # The tight box of alpha > 0 takes the speck in, and the map includes the last row/column.
    assert x1 >= 43 and y1 >= 27
    assert item["box_map"][0, int(y1), int(x1)] == 1


def test_the_release_gives_no_click_when_too_few_pixels_pass():
    alpha = np.zeros((16, 16), np.float32)
    alpha[2:5, 2:5] = 0.9  # 9 pixels above 0.8, 10 asked
    config = get_protocol("sdmatte").prompt_config(PromptConfig())
    prompts = PromptSampler(config)(alpha, np.random.default_rng(0), "few")
    assert (prompts.labels == -1).all()


@pytest.mark.parametrize(("mode", "expected"), [("none", 0.999), ("truncate", 254 / 255)])
def test_scores_follow_the_protocols_quantisation(mode, expected, synthetic_batch):
    batch = synthetic_batch(32, 1)
    prediction = torch.full_like(batch.alpha, 0.999)
    ((pred, _, _),) = scored_pairs(prediction, batch, "bilinear", False, False, quantize=mode)
    assert torch.allclose(pred, torch.full_like(pred, expected))


def test_the_quantisation_switch_overrides_the_protocols():
    assert MattingDataModule(num_workers=0).quantize == "none"
    assert MattingDataModule(num_workers=0, protocol="sdmatte").quantize == "truncate"
    assert (
        MattingDataModule(num_workers=0, protocol="sdmatte", quantize="round").quantize == "round"
    )
    assert MattingDataModule(num_workers=0, quantize="round").quantize == "round"


def test_a_protocols_fit_yields_to_the_models_and_fills_in_where_it_has_none():
    from mattekit.data.convention import InputConvention

    zim_like = InputConvention(128, "letterbox")
    data = MattingDataModule(num_workers=0, protocol="sdmatte")  # the release stretches
    data.use_convention(zim_like, "ZIM")  # not an error: the user gave no --data.resize
    assert data.resize == "letterbox"
    data = MattingDataModule(num_workers=0, protocol="sdmatte")
    data.use_convention(InputConvention(), "Baseline")
    assert data.resize == "stretch"
    data = MattingDataModule(num_workers=0, protocol="zim")
    data.use_convention(InputConvention(), "Baseline")
    assert data.resize == "letterbox"
