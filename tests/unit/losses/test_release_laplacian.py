"""The SDMatte release's Laplacian loss (``LaplacianLoss(pyramid="band_pass", region_mean=True)``)
and its region terms, against values worked out by hand and values computed by the release's
``criterion.py`` on the same inputs (vivoCameraResearch/SDMatte, ``MattingCriterion(size=H)``,
trimap passed as the release's Normalize leaves it, ``trimap * 2 - 1``)."""

import pytest
import torch

from mattekit.losses import L1Loss, LaplacianLoss, unknown_region
from mattekit.losses.laplacian import band_pass_pyramid
from mattekit.models.sdmatte.lightning_model import LiteSDMatte, SDMatte


def release_laplacian(**kwargs) -> LaplacianLoss:
    return LaplacianLoss(pyramid="band_pass", **kwargs)


def checkerboard(size: int) -> torch.Tensor:
    """1 x 1 x size x size board of 0 and 1."""
    index = torch.arange(size)
    return ((index[:, None] + index[None, :]) % 2).float()[None, None]


def random_pair(size: int, batch: int, seed: int = 0):
    """``(pred, target, trimap)``: uniform noise and a trimap of 8 x 8 cells of 0, 0.5, 1."""
    generator = torch.Generator().manual_seed(seed)
    pred = torch.rand(batch, 1, size, size, generator=generator)
    target = torch.rand(batch, 1, size, size, generator=generator)
    cells = torch.randint(0, 3, (batch, 1, size // 8, size // 8), generator=generator) / 2
    trimap = cells.float().repeat_interleave(8, 2).repeat_interleave(8, 3)
    return pred, target, trimap


def disc_pair(size: int, seed: int = 0):
    """``(pred, target, trimap)``, batch 1: a disc (radius 0.3 x size, 16 px soft edge), the
    disc plus clipped noise (sigma 0.1), and an unknown band of 0.05 x size around the edge."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt().float()
    edge = size * 0.3
    target = ((edge + 8 - radius) / 16).clamp(0, 1)[None, None]
    pred = (target + 0.1 * torch.randn(1, 1, size, size, generator=generator)).clamp(0, 1)
    trimap = torch.full_like(target, 0.5)
    band = (radius - edge).abs() < size * 0.05
    trimap[:, :, ~band & (radius < edge)] = 1.0
    trimap[:, :, ~band & (radius >= edge)] = 0.0
    return pred, target, trimap


def region_terms(pred, target, trimap, losses=None) -> dict[str, float]:
    """SDMatte's four region terms, named as the release's ``MattingCriterion`` names them, from
    ``losses`` (a family's ``l1`` and ``laplacian`` modules; default: built here)."""
    if losses is None:
        losses = {"l1": L1Loss(), "laplacian": release_laplacian(levels=5, region_mean=True)}
    l1, laplacian = losses["l1"], losses["laplacian"]
    unknown = unknown_region(trimap)
    return {
        "unknown_l1_loss": float(l1.in_region(pred, target, unknown)),
        "known_l1_loss": float(l1.in_region(pred, target, ~unknown)),
        "known_lap_loss": float(laplacian.in_region(pred, target, ~unknown)),
        "unknown_lap_loss": float(laplacian.in_region(pred, target, unknown)),
    }


# --- by hand ------------------------------------------------------------------------------------


def test_a_constant_offset_costs_nothing_without_a_low_pass_level():
    pred, target = torch.full((1, 1, 64, 64), 0.75), torch.full((1, 1, 64, 64), 0.25)
    # up() of a constant is the constant (zeros between pixels x 4, blurred: every pixel gets
    # 1/4 of the kernel's weight, on the border too, as reflection keeps the parity), so every
    # band-pass level of a constant is 0; the kornia form keeps it in its low-pass level: 16 x 0.5
    assert release_laplacian(levels=5)(pred, target).item() == 0.0
    assert LaplacianLoss(levels=5)(pred, target).item() == pytest.approx(8.0)


def test_checkerboard_lives_in_the_finest_level_divided_by_the_level_count():
    board = checkerboard(8)
    # the binomial blur turns the board into its mean 0.5, up() keeps 0.5: level 0 = board - 0.5
    # = +-0.5 (mean |.| 0.5), level 1 (a flat 0.5 against a flat 0.5) = 0; (1 x 0.5 + 0) / 2
    loss = release_laplacian(levels=2)(board, torch.full_like(board, 0.5))
    assert loss.item() == pytest.approx(0.25)
    levels = band_pass_pyramid(board - 0.5, 2)
    assert [tuple(level.shape[-2:]) for level in levels] == [(8, 8), (4, 4)]


def test_levels_too_small_for_the_reflected_border_count_zero():
    board = checkerboard(32)
    # 32 -> 16 -> 8 -> 4 -> 2: a 2 px level cannot be blurred with a reflected 2 px border
    # (the release fails there), so 4 levels; level 0 alone differs: 0.5 / 5
    assert len(band_pass_pyramid(board, 5)) == 4
    assert release_laplacian(levels=5)(board, torch.full_like(board, 0.5)).item() == (
        pytest.approx(0.1)
    )


def test_odd_sides_are_cropped_at_each_level():
    levels = band_pass_pyramid(torch.rand(1, 1, 67, 97), 3)
    assert [tuple(level.shape[-2:]) for level in levels] == [(66, 96), (32, 48), (16, 24)]


def test_region_mean_divides_by_the_regions_share_of_the_image():
    pred, target, _ = random_pair(64, 2)
    trimap = torch.zeros_like(pred)
    trimap[0, :, :16] = 0.5  # unknown: 16 rows of one sample, 1/8 of the batch's pixels
    unknown = unknown_region(trimap)
    whole = release_laplacian(levels=5).in_region(pred, target, unknown)
    per_pixel = release_laplacian(levels=5, region_mean=True).in_region(pred, target, unknown)
    assert per_pixel.item() == pytest.approx(8 * whole.item())
    empty = torch.zeros_like(unknown)
    assert release_laplacian(region_mean=True).in_region(pred, target, empty).item() == 0.0


def test_unknown_pyramid_form_is_refused():
    with pytest.raises(ValueError, match="pyramid"):
        LaplacianLoss(pyramid="gaussian")


# --- the release's values -----------------------------------------------------------------------


DISC_512_TERMS = {
    "unknown_l1_loss": 0.050789367,
    "known_l1_loss": 0.039699040,
    "known_lap_loss": 0.035984643,
    "unknown_lap_loss": 0.118628100,
}


def test_the_512_px_disc_pair_gives_the_releases_four_terms():
    # release criterion.py; mattekit's kornia form gives known_lap 0.612, unknown_lap 0.125
    assert region_terms(*disc_pair(512)) == pytest.approx(DISC_512_TERMS, abs=1e-6)


@pytest.mark.parametrize("family", [SDMatte, LiteSDMatte])
def test_sdmatte_families_train_with_the_releases_terms(family):
    losses = family(variant="tiny").losses
    terms = region_terms(*disc_pair(512), losses=losses)
    assert terms == pytest.approx(DISC_512_TERMS, abs=1e-6)


def test_a_random_64_px_batch_of_two_gives_the_releases_four_terms():
    terms = region_terms(*random_pair(64, 2))
    assert terms == pytest.approx(
        {
            "unknown_l1_loss": 0.337928891,
            "known_l1_loss": 0.331755430,
            "known_lap_loss": 0.197202727,
            "unknown_lap_loss": 0.232825160,
        },
        abs=1e-6,
    )


def test_odd_non_square_images_give_the_releases_laplacian_loss():
    generator = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 1, 67, 97, generator=generator)
    target = torch.rand(2, 1, 67, 97, generator=generator)
    # release laplacian_loss(pred, target): no region, no scale
    assert release_laplacian(levels=5)(pred, target).item() == pytest.approx(0.185936064, abs=1e-6)
