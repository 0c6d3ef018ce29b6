"""The fast metrics against the literal numpy/scipy reference, for every preset."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from metric_cases import as_batch, random_case

from mattekit.metrics import PRESETS, matting_metrics, reference
from mattekit.metrics.functional import gaussian_gradient_magnitude, gradient_error, mat2gray

TOLERANCE = {"SAD": 1e-9, "MSE": 1e-9, "MAD": 1e-9, "Grad": 1e-9, "Conn": 1e-6}
CASES = [random_case(seed) for seed in range(6)]


def _metric_values(pred, gt, trimap, preset) -> dict[str, float]:
    metrics = matting_metrics(preset)
    metrics.update(as_batch(pred), as_batch(gt), None if trimap is None else as_batch(trimap))
    return {name: float(value) for name, value in metrics.compute().items()}


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("with_trimap", [True, False])
def test_each_sample_matches_the_reference(preset, with_trimap, caplog):
    for pred, gt, trimap in CASES:
        trimap = trimap if with_trimap else None
        got = _metric_values(pred, gt, trimap, preset)
        expected = reference.matting_errors(pred, gt, trimap, preset)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=TOLERANCE[name], abs=1e-12), name


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_batches_average_over_samples(preset):
    metrics = matting_metrics(preset)
    preds, gts, trimaps = zip(*CASES[:3], strict=True)
    metrics.update(as_batch(*preds[:1]), as_batch(*gts[:1]), as_batch(*trimaps[:1]))
    metrics.update(as_batch(*preds[1:]), as_batch(*gts[1:]), as_batch(*trimaps[1:]))
    got = metrics.compute()
    per_sample = [reference.matting_errors(p, g, t, preset) for p, g, t in CASES[:3]]
    for name in per_sample[0]:
        expected = np.mean([values[name] for values in per_sample])
        assert float(got[name]) == pytest.approx(expected, rel=TOLERANCE[name])


def test_trimap_encodings_give_identical_results():
    pred, gt, trimap = CASES[0]
    unit = {0: 0.0, 128: 0.5, 255: 1.0}
    trimap_unit = np.vectorize(unit.get)(trimap).astype(np.float32)
    encodings = [
        as_batch(trimap, dtype=torch.uint8),
        as_batch(trimap, dtype=torch.float32),
        as_batch(trimap, dtype=torch.int64),
        as_batch(trimap_unit, dtype=torch.float32),
        as_batch(trimap_unit, dtype=torch.float16),
    ]
    results = []
    for encoded in encodings:
        metrics = matting_metrics("dim")
        metrics.update(as_batch(pred), as_batch(gt), encoded)
        results.append({k: float(v) for k, v in metrics.compute().items()})
    assert all(result == results[0] for result in results)


def test_presets_differ_where_their_definitions_differ(caplog):
    pred, gt, _ = CASES[1]
    dim, zim, sdmatte = (_metric_values(pred, gt, None, name) for name in ("dim", "zim", "sdmatte"))
    assert zim["SAD"] == dim["SAD"] == sdmatte["SAD"]
    assert zim["MSE"] == pytest.approx(dim["MSE"] * 1e3) and sdmatte["MSE"] == zim["MSE"]
    assert zim["Grad"] != pytest.approx(dim["Grad"], rel=1e-3)  # Sobel vs Gaussian
    # Without mat2gray a matte that does not span [0, 1] changes sdmatte's Grad, not dim's.
    assert sdmatte["Grad"] == pytest.approx(dim["Grad"], rel=1e-9)  # both span [0, 1]
    dim_scaled, sdmatte_scaled = (
        _metric_values(pred * 0.9, gt, None, name) for name in ("dim", "sdmatte")
    )
    assert dim_scaled["Grad"] != pytest.approx(sdmatte_scaled["Grad"], rel=1e-3)
    assert zim["Conn"] == pytest.approx(dim["Conn"], rel=1e-6)  # same rule, whole image


def test_sdmatte_conn_quirk_by_hand():
    # gt: a 3x3 block of ones and a 3-pixel column of 0.5 beside it; pred equal except the
    # block centre (0.6) and the column (0.1). 12 of 144 pixels are foreground at t = 0.1.
    # zim (largest foreground component): the ring of 8 never leaves omega (l = 1, phi = 1 for
    # both); the centre leaves at t = 0.7 (l = 0.6): |1 - 0.6| = 0.4; the column leaves at
    # t = 0.2 (l = 0.1): phi_pred = 1, phi_gt = 1 - 0.4: 3 x 0.4. Conn = 1.6 / 1000.
    # sdmatte (background label wins the bincount at every t): all foreground gets l = 0, the
    # background l = 1. Ring: phi = 0 for both; centre: |0.4 - 0| = 0.4; column: d_pred = 0.1
    # < 0.15 so phi_pred = 1, phi_gt = 0.5: 3 x 0.5. Conn = 1.9 / 1000.
    gt = np.zeros((12, 12), np.float32)
    gt[3:6, 3:6] = 1.0
    gt[3:6, 6] = 0.5
    pred = gt.copy()
    pred[4, 4], pred[3:6, 6] = 0.6, 0.1
    assert _metric_values(pred, gt, None, "zim")["Conn"] == pytest.approx(0.0016, rel=1e-6)
    assert _metric_values(pred, gt, None, "sdmatte")["Conn"] == pytest.approx(0.0019, rel=1e-6)
    for preset, expected in (("zim", 0.0016), ("sdmatte", 0.0019)):
        conn = reference.matting_errors(pred, gt, None, preset)["Conn"]
        assert conn == pytest.approx(expected, rel=1e-6)


def test_zim_grad_equals_a_torch_sobel_formulation():
    # ZIM's own formulation: conv2d with Sobel kernels, zero padding 1, sqrt(sum sq + 1e-8),
    # mean absolute difference x 1e3 (here in float64).
    pred, gt, _ = CASES[2]
    sobel = torch.tensor(
        [[[-1, -2, -1], [0, 0, 0], [1, 2, 1]], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]],
        dtype=torch.float64,
    )[:, None]

    def magnitude(alpha):
        gradients = F.conv2d(as_batch(alpha, dtype=torch.float64), sobel, padding=1)
        return torch.sqrt((gradients**2).sum(dim=1) + 1e-8)

    expected = F.l1_loss(magnitude(pred), magnitude(gt)).item() * 1e3
    assert _metric_values(pred, gt, None, "zim")["Grad"] == pytest.approx(expected, rel=1e-9)


def test_reference_kernel_is_9x9_unit_norm_and_antisymmetric():
    hx = reference.gaussgradient_kernel(1.4)
    assert hx.shape == (9, 9)
    assert np.sum(hx**2) == pytest.approx(1.0)
    np.testing.assert_allclose(hx, -hx[:, ::-1], atol=1e-15)


@pytest.mark.parametrize(
    "rows, columns",
    [(slice(0, 5), slice(0, 64)), (slice(20, 30), slice(3, 9)), (slice(58, 64), slice(60, 64))],
    ids=["top edge", "interior", "bottom-right corner"],
)
def test_gradient_on_a_window_around_the_region_equals_the_whole_image(rows, columns):
    """Grad filters only the region's bounding box grown by the kernel radius: the same values
    on the region as filtering the whole image, at the image borders too."""
    rng = np.random.default_rng(3)
    pred, target = rng.random((64, 64)), rng.random((64, 64))
    region = np.zeros((64, 64), dtype=bool)
    region[rows, columns] = True
    for kind in ("gaussian", "gaussian_minmax"):
        p, t = (mat2gray(pred), mat2gray(target)) if kind == "gaussian_minmax" else (pred, target)
        whole = (gaussian_gradient_magnitude(p) - gaussian_gradient_magnitude(t)) ** 2
        assert gradient_error(pred, target, region, kind) == pytest.approx(
            whole[region].sum() / 1000, rel=1e-12
        )
    assert gradient_error(pred, target, np.zeros((64, 64), bool), "gaussian") == 0.0
