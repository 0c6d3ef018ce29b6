"""ZIM's label converter: network, PRN, SGA / STL, checkpoints, learning, folder conversion."""

import json

import cv2
import lightning
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mattekit.errors import UsageError
from mattekit.models.zim_converter.augmentations import apply_cutout, cutout_keep_mask
from mattekit.models.zim_converter.backbone import build_hiera
from mattekit.models.zim_converter.lightning_model import (
    SYNTHETIC_STL_PROBABILITY,
    ZIMLabelConverter,
)
from mattekit.models.zim_converter.torch_model import (
    VARIANTS,
    build_label_converter,
    count_parameters,
    dilate,
    progressive_refinement,
    uncertain_band,
)
from mattekit.output_records import file_sha256
from mattekit.pipelines.label_conversion import convert_folder, convert_labels_main, load_converter

# The paper variant at 1024 px (README table): Hiera-B+ 75,992,112 (7,340,032 of them the
# position embedding of the 256 x 256 token grid) + stem and decoder 4,664,099.
PAPER_PARAMETERS = 80_656_211


def tiny(**kwargs) -> ZIMLabelConverter:
    return ZIMLabelConverter(variant="tiny", image_size=32, **kwargs)


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(32, 4)


@pytest.mark.parametrize("size", [(32, 32), (45, 70)])
def test_outputs_at_stride_one_in_unit_range(size):
    torch.manual_seed(0)
    network = build_label_converter("tiny", image_size=32).eval()
    mask = torch.zeros(2, 1, *size)
    mask[..., 10:30, 10:30] = 1
    with torch.no_grad():
        outputs = network(torch.rand(2, 3, *size), mask)
    alphas = {"alpha", "alpha_os8", "alpha_os4", "alpha_os1"}
    assert set(outputs) == alphas | {"band_os4", "band_os1"}
    for name in alphas:
        assert outputs[name].shape == (2, 1, *size)
        assert outputs[name].min() >= 0 and outputs[name].max() <= 1
    for name in ("band_os4", "band_os1"):
        assert outputs[name].shape == (2, 1, *size) and outputs[name].dtype == torch.bool


def test_dilation_is_opencvs_with_mgmattings_elliptical_kernels():
    # MGMatting dilates with cv2.getStructuringElement(MORPH_ELLIPSE, (k, k)), k in 1..29; even
    # sizes included (anchor k // 2), each sample with its own size
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(4, 1, 40, 50, generator=generator) > 0.995
    mask[0, 0, 0, 0] = mask[1, 0, 39, 49] = True  # kernels reaching past the border
    for sizes in ([1, 2, 3, 4], [29, 14, 15, 7], [6, 29, 1, 10], [15] * 4):
        grown = dilate(mask, sizes)
        for i, size in enumerate(sizes):
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            expected = cv2.dilate(mask[i, 0].numpy().astype(np.uint8), kernel)
            assert np.array_equal(grown[i, 0].numpy(), expected.astype(bool)), (i, size)


@pytest.mark.parametrize("size", [1, 7, 14, 15, 29])
def test_band_of_kernel_size_k_around_a_step_edge_is_k_pixels_wide(size):
    alpha = torch.zeros(1, 1, 40, 60)
    alpha[..., 30:] = 1
    alpha[..., 29] = 0.5  # the step's one uncertain column
    band = uncertain_band(alpha, [size])
    columns = band[0, 0].any(dim=0).nonzero().flatten()
    assert band[0, 0, 20].sum() == size  # a row away from the top and bottom borders
    # OpenCV's anchor is size // 2: an even kernel reaches one pixel further right than left
    assert columns.min() == 29 - (size - 1) // 2 and columns.max() == 29 + size // 2


def test_band_sizes_are_mgmattings_kernel_sizes():
    network = build_label_converter("tiny", image_size=32)
    assert network.eval()._band_sizes(3) == ([15] * 3, [7] * 3)
    torch.manual_seed(0)
    first, second = network.train()._band_sizes(2000)  # one draw per sample
    assert (min(first), max(first)) == (1, 29) and (min(second), max(second)) == (1, 14)


def test_prn_replaces_only_the_uncertain_band():
    coarse = torch.zeros(1, 1, 8, 8)
    coarse[..., :, 5:] = 1
    coarse[..., 2, 2] = 0.5  # the only uncertain pixel
    finer = torch.full_like(coarse, 0.3)
    finest = torch.full_like(coarse, 0.7)
    fused, band_os4, band_os1 = progressive_refinement(coarse, finer, finest, ([3], [1]))
    band = torch.zeros_like(coarse, dtype=torch.bool)
    band[..., 2, 1:4] = band[..., 1:4, 2] = True  # the 3 x 3 ellipse is a cross
    assert torch.equal(band_os4, band) and torch.equal(band_os1, band)
    assert torch.equal(fused[~band], coarse[~band])
    assert torch.allclose(fused[band], torch.tensor(0.7))  # 0.3 is uncertain: stride 1 wins
    # A certain stride-4 answer stops the refinement: stride 1 is not consulted.
    fused, _, band_os1 = progressive_refinement(coarse, torch.ones_like(coarse), finest, ([3], [1]))
    assert not band_os1.any()
    assert torch.equal(fused[band], torch.ones(5)) and torch.equal(fused[~band], coarse[~band])


def _one_uncertain_pixel() -> torch.Tensor:
    """1 x 1 x 8 x 8 matte, 0 except 0.5 at (2, 2)."""
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2, 2] = 0.5
    return target


def _loss_outputs(finest: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs whose stride-8 and stride-4 answers are exact; only ``finest`` can err. The
    stride-4 band (kernel size 1) is then the pixel (2, 2), the stride-1 band (kernel size 3)
    the 5-pixel cross around it."""
    target = _one_uncertain_pixel()
    fused, band_os4, band_os1 = progressive_refinement(target, target, finest, ([1], [3]))
    return {
        "alpha": fused,
        "alpha_os8": target,
        "alpha_os4": target,
        "alpha_os1": finest,
        "band_os4": band_os4,
        "band_os1": band_os1,
        "target": target,
    }


def test_finer_losses_are_computed_only_in_their_bands(batch):
    module = tiny()
    outside = _one_uncertain_pixel()
    # an error outside the stride-1 band (a 5-pixel cross at (2, 2)), far enough that its
    # gradient does not reach the band either
    outside[..., 6, 6] = 1.0
    terms = module.loss_terms(_loss_outputs(outside), batch)
    assert set(terms) == {"l1", "grad"}
    assert all(value.item() == 0 for value in terms.values())
    inside = _one_uncertain_pixel()
    inside[..., 2, 3] = 1.0  # an error of 1 on one of the band's 5 pixels
    terms = module.loss_terms(_loss_outputs(inside), batch)
    # only the stride-1 output errs: mean over its band (1 / 5), times its weight 0.5
    assert terms["l1"].item() == pytest.approx(0.5 / 5)


def test_sga_cuts_the_same_region_from_mask_and_target():
    mask = torch.zeros(3, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    target = mask * 0.8
    generator = torch.Generator().manual_seed(0)
    keep = cutout_keep_mask(mask, probability=1.0, generator=generator)
    cut_mask, cut_target = apply_cutout(mask, target, keep)
    for i in range(3):
        removed = keep[i] == 0
        assert removed.any() and (mask[i][removed] > 0).any()  # the cut bites the object
        assert (cut_mask[i][removed] == 0).all() and (cut_target[i][removed] == 0).all()
        assert torch.equal(cut_target[i][~removed], target[i][~removed])
    assert (cutout_keep_mask(mask, probability=0.0) == 1).all()


def test_sga_in_training_only(batch):
    module = tiny(sga_probability=1.0, stl=False)
    torch.manual_seed(0)
    outputs = module.train().training_outputs(batch)
    cut = (outputs["input_mask"] != batch.coarse_mask) | (outputs["target"] != batch.alpha)
    assert cut.any()
    assert (outputs["input_mask"][cut] == 0).all() and (outputs["target"][cut] == 0).all()
    with torch.no_grad():
        outputs = module.eval()(batch)
    assert torch.equal(outputs["input_mask"], batch.coarse_mask)
    assert torch.equal(outputs["target"], batch.alpha)


def test_stl_target_is_the_input_mask_for_coarse_sources(batch):
    assert set(batch.source) == {"synthetic_val"}
    module = tiny(sga=False, coarse_sources=["synthetic_val"]).train()
    assert module.stl_probability == 0.0
    outputs = module.training_outputs(batch)
    assert torch.equal(outputs["target"], batch.coarse_mask)
    assert torch.equal(outputs["input_mask"], batch.coarse_mask)
    fine = tiny(sga=False, coarse_sources=["ade20k"]).train().training_outputs(batch)
    assert torch.equal(fine["target"], batch.alpha)


def test_stl_probability_makes_synthetic_coarse_samples(batch):
    assert tiny().stl_probability == SYNTHETIC_STL_PROBABILITY
    outputs = tiny(sga=False, stl_probability=1.0).train().training_outputs(batch)
    binarised = (batch.alpha >= 0.5).float()
    assert torch.equal(outputs["input_mask"], binarised)
    assert torch.equal(outputs["target"], binarised)
    off = tiny(sga=False, stl=False, stl_probability=1.0).train().training_outputs(batch)
    assert torch.equal(off["target"], batch.alpha)


def test_paper_variant_builds_on_meta_device():
    with torch.device("meta"):
        network = build_label_converter("hiera_base_plus", image_size=1024)
    assert network.encoder.channels == [112, 224, 448, 896]
    assert network.encoder.hiera.pos_embed.is_meta
    assert count_parameters(network) == PAPER_PARAMETERS
    assert count_parameters(network.encoder) == 75_992_112


def _assert_same_backbone(network, hiera):
    loaded = network.encoder.hiera.state_dict()
    assert loaded.keys() == hiera.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in hiera.state_dict().items())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_backbone_checkpoint_round_trip(tmp_path, suffix):
    settings = VARIANTS["tiny"]
    hiera = build_hiera(settings.hiera_name, 32, in_chans=4, **settings.hiera_args)
    path = tmp_path / f"hiera{suffix}"
    if suffix == ".safetensors":
        save_file(hiera.state_dict(), str(path))
    else:
        torch.save({"model": hiera.state_dict()}, path)
    _assert_same_backbone(build_label_converter("tiny", 32, backbone_checkpoint=path), hiera)


def test_rgb_checkpoint_gets_a_zero_mask_channel_and_a_resampled_grid(tmp_path):
    settings = VARIANTS["tiny"]
    rgb = build_hiera(settings.hiera_name, 32, in_chans=3, **settings.hiera_args)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    network = build_label_converter("tiny", 64, backbone_checkpoint=tmp_path / "rgb.pth")
    weight = network.encoder.hiera.patch_embed.proj.weight
    assert torch.equal(weight[:, :3], rgb.patch_embed.proj.weight)
    assert (weight[:, 3] == 0).all()
    assert network.encoder.hiera.pos_embed.shape == (1, 16 * 16, 16)  # from 8 x 8 tokens
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        build_label_converter("tiny", 32, backbone_checkpoint=tmp_path / "nowhere.pth")


def test_converter_learns_on_synthetic_data(synthetic_batch, train_on_batch):
    """Fast check: the loss on a batch halves and held-out L1 halves within 60 steps; the
    comparison with the input mask as the answer needs ~1000 steps (README: "Learning on
    synthetic data")."""
    torch.manual_seed(0)
    batch, held = synthetic_batch(32, 8, stage="train"), synthetic_batch(32, 8)
    module = tiny(sga=False, stl=False, lr=3e-3)

    def held_out_l1() -> float:
        with torch.no_grad():
            return (module.eval()(held)["alpha"] - held.alpha).abs().mean().item()

    initial_l1 = held_out_l1()
    losses = train_on_batch(module, batch, steps=60)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert held_out_l1() < 0.5 * initial_l1


def _write_pair(folder, stem, size, suffix=".png"):
    height, width = size
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    cv2.imwrite(str(folder / "images" / f"{stem}{suffix}"), image)
    cv2.imwrite(str(folder / "masks" / f"{stem}.png"), mask)


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _write_pair(tmp_path, "cat", (45, 70), ".jpg")
    _write_pair(tmp_path, "dog", (33, 20))
    return tmp_path


def test_convert_folder_writes_original_sizes_and_resumes(folders):
    module = tiny()
    out = folders / "mattes"
    summary = convert_folder(module, folders / "images", folders / "masks", out, batch_size=2)
    assert (summary.converted, summary.skipped) == (2, 0)
    cat = cv2.imread(str(out / "cat.png"), cv2.IMREAD_UNCHANGED)
    assert cat.shape == (45, 70) and cat.dtype == np.uint8
    assert cv2.imread(str(out / "dog.png"), cv2.IMREAD_UNCHANGED).shape == (33, 20)
    (out / "dog.png").unlink()  # as if interrupted before the second file
    before = (out / "cat.png").stat().st_mtime_ns
    summary = convert_folder(module, folders / "images", folders / "masks", out)
    assert (summary.converted, summary.skipped) == (1, 1)
    assert (out / "dog.png").exists() and (out / "cat.png").stat().st_mtime_ns == before
    assert (
        convert_folder(
            module, folders / "images", folders / "masks", out, skip_existing=False
        ).converted
        == 2
    )


def test_a_matte_of_another_mask_or_converter_is_not_kept_or_replaced_silently(folders):
    module, out = tiny(), folders / "mattes"
    convert_folder(module, folders / "images", folders / "masks", out)
    record = json.loads((out / "cat.inputs.json").read_text())
    assert record["mask_sha256"] == file_sha256(folders / "masks" / "cat.png")
    mask = np.zeros((45, 70), np.uint8)
    mask[5:20, 5:30] = 255
    cv2.imwrite(str(folders / "masks" / "cat.png"), mask)  # a corrected label
    with pytest.raises(UsageError, match=r"cat\.png was made from other inputs \(mask_sha256"):
        convert_folder(module, folders / "images", folders / "masks", out)
    torch.manual_seed(1)
    with pytest.raises(UsageError, match="converter_weights_sha256"):  # retrained weights
        convert_folder(tiny(), folders / "images", folders / "masks", out)
    summary = convert_folder(module, folders / "images", folders / "masks", out, overwrite=True)
    assert (summary.converted, summary.skipped) == (1, 1)  # dog's inputs are unchanged


def test_convert_folder_errors_name_the_file(folders):
    cv2.imwrite(str(folders / "masks" / "cat.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="cat"):
        convert_folder(tiny(), folders / "images", folders / "masks", folders / "out")
    (folders / "masks" / "dog.png").unlink()
    with pytest.raises(FileNotFoundError, match="'dog'"):
        convert_folder(tiny(), folders / "images", folders / "masks", folders / "out")


def test_load_converter_and_command_line(folders, capsys):
    module = tiny(lr=5e-4)
    checkpoint = folders / "converter.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        checkpoint,
    )
    restored = load_converter(checkpoint)
    assert restored.hparams.lr == 5e-4 and not restored.training
    assert all(torch.equal(v, restored.state_dict()[k]) for k, v in module.state_dict().items())
    args = [f"--ckpt_path={checkpoint}", f"--image_dir={folders / 'images'}"]
    args += [f"--mask_dir={folders / 'masks'}", f"--output_dir={folders / 'cli'}"]
    convert_labels_main([*args, "--batch_size=2", "--skip_existing=false"])
    assert "2 mattes written" in capsys.readouterr().out
    assert sorted(p.name for p in (folders / "cli").glob("*.png")) == ["cat.png", "dog.png"]
