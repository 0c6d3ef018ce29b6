"""Folder sources on tiny data sets built in tmp_path (no dependency on real data)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit.data.composition import CompositionFolder
from mattekit.data.folders import DISFolder, ImageAlphaFolder, list_image_files
from mattekit.data.images import ImageFolder
from mattekit.data.micromat import MicroMatFolder
from mattekit.data.refmatte import RefMatteFolder
from mattekit.output_records import file_sha256


def save_rgb(path: Path, height: int, width: int, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(path)
    return rgb


def save_grey(path: Path, grey: np.ndarray, as_rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.repeat(grey[..., None], 3, axis=2) if as_rgb else grey
    Image.fromarray(array, "RGB" if as_rgb else "L").save(path)


def save_palette_trimap(path: Path, trimap: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray((trimap // 127).astype(np.uint8), "P")  # 0, 128, 255 -> 0, 1, 2
    image.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255])
    image.save(path)


def ramp(height: int, width: int) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) * 7 % 256).astype(np.uint8)


def make_alphamatting_like(root: Path, sizes: dict[str, tuple[int, int]]) -> None:
    """input/*.png photos, gt/*.png RGB alpha (R=G=B), trimap1/*.png palette trimaps."""
    for stem, (height, width) in sizes.items():
        save_rgb(root / "input" / f"{stem}.png", height, width)
        save_grey(root / "gt" / f"{stem}.png", ramp(height, width), as_rgb=True)
        trimap = np.full((height, width), 128, np.uint8)
        trimap[0], trimap[-1] = 0, 255
        save_palette_trimap(root / "trimap1" / f"{stem}.png", trimap)


# ---- file listing and ImageAlphaFolder ----------------------------------------------------------


def test_list_image_files_is_sorted_and_ignores_other_files(tmp_path):
    for name in ["b.jpg", "a.PNG", "c.webp", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    assert list(list_image_files(tmp_path)) == ["a", "b", "c"]


def test_list_image_files_rejects_two_files_with_one_stem(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="'a'"):
        list_image_files(tmp_path)


def test_image_alpha_folder_reads_alphamatting_style_quirks(tmp_path):
    make_alphamatting_like(tmp_path / "am", {"GT02": (6, 8), "GT01": (5, 4)})
    source = ImageAlphaFolder(
        str(tmp_path / "am"), image_dir="input", alpha_dir="gt", trimap_dir="trimap1"
    )
    assert len(source) == 2 and source.name == "am"
    sample = source[0]
    assert sample.sample_id == "GT01" and sample.source == "am"
    assert sample.image.shape == (5, 4, 3) and sample.alpha.dtype == np.float32
    np.testing.assert_array_equal(sample.alpha, ramp(5, 4).astype(np.float32) / 255)
    assert set(np.unique(sample.trimap).tolist()) == {0, 128, 255}
    assert source[1].image.shape == (6, 8, 3)  # sizes may differ between samples


def test_image_alpha_folder_missing_counterpart_names_stem_and_folder(tmp_path):
    make_alphamatting_like(tmp_path, {"a": (4, 4), "b": (4, 4)})
    (tmp_path / "gt" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"'b'.*gt"):
        ImageAlphaFolder(str(tmp_path), image_dir="input", alpha_dir="gt")


def test_image_alpha_folder_non_strict_skips_with_a_warning(tmp_path, caplog):
    make_alphamatting_like(tmp_path, {"a": (4, 4), "b": (4, 4)})
    (tmp_path / "trimap1" / "a.png").unlink()
    with caplog.at_level(logging.WARNING):
        source = ImageAlphaFolder(
            str(tmp_path), image_dir="input", alpha_dir="gt", trimap_dir="trimap1", strict=False
        )
    assert [files["image"].stem for files in source.files] == ["b"]
    assert "skipping 1 of 2" in caplog.text


def test_image_alpha_folder_size_mismatch_names_both_files(tmp_path):
    make_alphamatting_like(tmp_path, {"a": (4, 4)})
    save_grey(tmp_path / "gt" / "a.png", ramp(4, 5))
    source = ImageAlphaFolder(str(tmp_path), image_dir="input", alpha_dir="gt")
    with pytest.raises(ValueError, match=r"gt/a\.png is 5x4.*input/a\.png is 4x4"):
        source[0]


def test_image_alpha_folder_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="image"):
        ImageAlphaFolder(str(tmp_path))
    (tmp_path / "image").mkdir()
    (tmp_path / "alpha").mkdir()
    with pytest.raises(ValueError, match="no samples"):
        ImageAlphaFolder(str(tmp_path))


# ---- DISFolder and ImageFolder ------------------------------------------------------------------


def test_dis_folder_alpha_is_the_binary_mask(tmp_path):
    save_rgb(tmp_path / "im" / "x.jpg", 4, 6)
    grey = np.zeros((4, 6), np.uint8)
    grey[1:3, 2:5] = 255
    grey[0, 0] = 100  # anti-aliased edge below the threshold
    save_grey(tmp_path / "gt" / "x.png", grey)
    sample = DISFolder(str(tmp_path))[0]
    assert sample.seg_mask.dtype == bool and sample.alpha.dtype == np.float32
    np.testing.assert_array_equal(sample.seg_mask, grey > 127)
    np.testing.assert_array_equal(sample.alpha, (grey > 127).astype(np.float32))


def test_image_folder_has_a_zero_placeholder_alpha(tmp_path):
    rgb = save_rgb(tmp_path / "photos" / "p.png", 8, 10)
    source = ImageFolder(str(tmp_path / "photos"))
    sample = source[0]
    np.testing.assert_array_equal(sample.image, rgb)
    assert sample.alpha.shape == (8, 10) and not sample.alpha.any()
    assert sample.box.tolist() == [0, 0, 9, 7]  # no prompt file: the whole photo


def test_image_folder_reads_the_prompt_json_beside_each_photo_as_matte_does(tmp_path):
    save_rgb(tmp_path / "photos" / "p.png", 8, 10)
    prompt = {"point": [[2, 3, 1]], "bbox": [1, 1, 6, 5], "text": "the cat"}
    (tmp_path / "photos" / "p.json").write_text(json.dumps(prompt))
    source = ImageFolder(str(tmp_path / "photos"))
    sample = source[0]
    assert sample.points.tolist() == [[2, 3, 1]] and sample.box.tolist() == [1, 1, 6, 5]
    assert sample.text == "the cat"
    inputs = source.sample_inputs(0)
    assert inputs["prompt_sha256"] == file_sha256(tmp_path / "photos" / "p.json")
    assert inputs["photo_sha256"] == file_sha256(tmp_path / "photos" / "p.png")


# ---- CompositionFolder --------------------------------------------------------------------------


@pytest.fixture
def composition_dirs(tmp_path):
    for index, (height, width) in enumerate([(10, 12), (8, 8)]):
        save_rgb(tmp_path / "fg" / f"f{index}.png", height, width, seed=index)
        save_grey(tmp_path / "alpha" / f"f{index}.png", ramp(height, width))
    save_rgb(tmp_path / "bg" / "small.jpg", 4, 5, seed=10)  # smaller than every foreground
    save_rgb(tmp_path / "bg" / "large.jpg", 40, 30, seed=11)
    return {name: str(tmp_path / name) for name in ("fg", "alpha", "bg")}


def test_composition_invariant_holds(composition_dirs):
    source = CompositionFolder(
        composition_dirs["fg"],
        composition_dirs["alpha"],
        composition_dirs["bg"],
        backgrounds_per_fg=3,
        fg_scale_range=(0.7, 1.6),
        flip_probability=0.5,
    )
    assert len(source) == 6
    for index in range(len(source)):
        for seed in range(4):
            sample = source.load(index, np.random.default_rng(seed))
            a = sample.alpha[..., None]
            exact = a * sample.fg + (1 - a) * sample.bg.astype(np.float32)
            assert np.abs(sample.image - exact).max() <= 0.5 + 1e-3
            assert sample.fg.shape == sample.bg.shape == sample.image.shape
            assert sample.alpha.min() >= 0 and sample.alpha.max() <= 1


def test_composition_is_deterministic_per_seed_and_maps_indices_to_foregrounds(composition_dirs):
    source = CompositionFolder(
        composition_dirs["fg"],
        composition_dirs["alpha"],
        composition_dirs["bg"],
        num_samples=5,
        backgrounds_per_fg=2,
    )
    assert len(source) == 5
    first, again = source[3], source[3]  # __getitem__ seeds the rng with the index
    np.testing.assert_array_equal(first.image, again.image)
    assert first.sample_id == again.sample_id
    # index // backgrounds_per_fg picks the foreground, wrapping around: 0,0,1,1,0
    assert [source[i].sample_id.split("+")[0] for i in range(5)] == ["f0", "f0", "f1", "f1", "f0"]
    backgrounds = {source.load(0, np.random.default_rng(s)).sample_id for s in range(20)}
    assert {b.split("+")[1].split("#")[0] for b in backgrounds} == {"small", "large"}


def test_composition_scaling_and_flipping_move_fg_and_alpha_together(composition_dirs):
    plain = CompositionFolder(
        composition_dirs["fg"], composition_dirs["alpha"], composition_dirs["bg"]
    )
    flipped = CompositionFolder(
        composition_dirs["fg"],
        composition_dirs["alpha"],
        composition_dirs["bg"],
        flip_probability=1.0,
    )
    reference, mirrored = plain[0], flipped[0]
    np.testing.assert_array_equal(mirrored.alpha, reference.alpha[:, ::-1])
    np.testing.assert_array_equal(mirrored.fg, reference.fg[:, ::-1])
    doubled = CompositionFolder(
        composition_dirs["fg"],
        composition_dirs["alpha"],
        composition_dirs["bg"],
        fg_scale_range=(2.0, 2.0),
    )[0]
    assert doubled.image.shape == (20, 24, 3) and doubled.bg.shape == (20, 24, 3)


def test_composition_rejects_bad_arguments(composition_dirs):
    dirs = (composition_dirs["fg"], composition_dirs["alpha"], composition_dirs["bg"])
    with pytest.raises(ValueError, match="fg_scale_range"):
        CompositionFolder(*dirs, fg_scale_range=(1.5, 1.0))
    with pytest.raises(ValueError, match="backgrounds_per_fg"):
        CompositionFolder(*dirs, backgrounds_per_fg=0)


# ---- RefMatteFolder -----------------------------------------------------------------------------


def make_refmatte(root: Path, annotation: object, file_name: str = "refmatte.json") -> None:
    save_rgb(root / "image" / "scene.jpg", 6, 7)
    save_grey(root / "alpha" / "scene_1.png", ramp(6, 7))
    save_grey(root / "alpha" / "scene_2.png", 255 - ramp(6, 7))
    (root / file_name).write_text(json.dumps(annotation))


def test_refmatte_official_form_and_expression_draws(tmp_path):
    make_refmatte(
        tmp_path,
        {
            "scene_1": {"image_name": "scene", "expressions": ["the cat", "a grey cat"]},
            "scene_2": {
                "image_name": "scene",
                "expressions": ["the glass"],
                "is_transparent": True,
            },
        },
        "refmatte_train_label.json",
    )
    source = RefMatteFolder(str(tmp_path), annotation="refmatte_train_label.json")
    assert len(source) == 2
    drawn = {source.load(0, np.random.default_rng(s)).text for s in range(20)}
    assert drawn == {"the cat", "a grey cat"}
    glass = source[1]
    assert glass.sample_id == "scene_2" and glass.is_transparent and glass.text == "the glass"
    np.testing.assert_array_equal(glass.alpha, (255 - ramp(6, 7)).astype(np.float32) / 255)


def test_refmatte_list_form_with_expanded_expressions(tmp_path):
    make_refmatte(
        tmp_path,
        [
            {"image": "scene.jpg", "alpha": "scene_1.png", "expressions": ["left cat", "cat"]},
            {"image": "scene", "alpha": "scene_2", "expressions": "the glass"},
        ],
    )
    source = RefMatteFolder(str(tmp_path), expand_expressions=True)
    samples = [source[i] for i in range(len(source))]
    assert [(s.sample_id, s.text) for s in samples] == [
        ("scene_1#0", "left cat"),
        ("scene_1#1", "cat"),
        ("scene_2#0", "the glass"),
    ]


def test_refmatte_errors_name_the_entry_or_file(tmp_path):
    make_refmatte(tmp_path, [{"image": "nope", "alpha": "scene_1", "expressions": ["x"]}])
    with pytest.raises(FileNotFoundError, match=r"'nope'.*image"):
        RefMatteFolder(str(tmp_path))
    (tmp_path / "refmatte.json").write_text(json.dumps([{"image": "scene", "alpha": "scene_1"}]))
    with pytest.raises(ValueError, match=r"refmatte\.json: entry 0.*expressions"):
        RefMatteFolder(str(tmp_path))
    (tmp_path / "refmatte.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"refmatte\.json"):
        RefMatteFolder(str(tmp_path))


# ---- MicroMatFolder -----------------------------------------------------------------------------


def make_micromat(root: Path, prompts: dict[str, dict]) -> None:
    """img/0001.png (8 x 10) with one matte and prompt per key, in both splits."""
    save_rgb(root / "img" / "0001.png", 8, 10)
    lines = []
    for stem, prompt in prompts.items():
        for split in ("fine", "coarse"):
            save_grey(root / "matte" / split / f"{stem}.png", ramp(8, 10))
            (root / "prompt" / split).mkdir(parents=True, exist_ok=True)
            (root / "prompt" / split / f"{stem}.json").write_text(json.dumps(prompt))
            lines.append(
                f"img/0001.png matte/{split}/{stem}.png prompt/{split}/{stem}.json seg/{split}/x"
            )
    (root / "data_list.txt").write_text("\n".join(lines) + "\n")


def padded(points: list[list[float]]) -> list[list[float]]:
    return points + [[-1, -1, -1]] * (50 - len(points))


def test_micromat_points_drop_padding_and_box_is_clipped_with_warning(tmp_path, caplog):
    make_micromat(
        tmp_path,
        {
            "0001_01": {"point": padded([[2, 3, 1], [7, 1, 0]]), "bbox": [1, 2, 6, 7]},
            "0001_02": {"point": padded([[4, 4, 1]]), "bbox": [-3, 2, 14, 7]},
            "0001_03": {"point": padded([[4, 4, 1]]), "bbox": [1, 2, 10, 8]},  # edge convention
        },
    )
    source = MicroMatFolder(str(tmp_path), split="coarse")
    assert len(source) == 3 and source.name == "micromat-coarse"
    inside = source[0]
    assert inside.points.dtype == np.float32
    np.testing.assert_array_equal(inside.points, [[2, 3, 1], [7, 1, 0]])
    np.testing.assert_array_equal(inside.box, [1, 2, 6, 7])
    with caplog.at_level(logging.WARNING):
        partly_outside = source[1]
    np.testing.assert_array_equal(partly_outside.box, [0, 2, 9, 7])
    assert "0001_02" in caplog.text and "clipped" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        at_the_edge = source[2]
    np.testing.assert_array_equal(at_the_edge.box, [1, 2, 9, 7])
    assert not caplog.records  # ending at W / H is a convention, not an error


@pytest.mark.parametrize("bbox", [[20, 2, 30, 7], [5, 2, 5, 7], [6, 2, 4, 7], [1, 7, 6, 2]])
def test_micromat_box_outside_or_inverted_is_an_error_naming_the_json(tmp_path, bbox):
    make_micromat(tmp_path, {"0001_01": {"point": padded([[2, 3, 1]]), "bbox": bbox}})
    source = MicroMatFolder(str(tmp_path), split="fine")
    with pytest.raises(ValueError, match=r"prompt/fine/0001_01\.json"):
        source[0]


@pytest.mark.parametrize("point", [[[1, 2], [3, 4], [5, 6]], [[1, 2, 1], [3, 4]], [[1, 2, 7]]])
def test_micromat_malformed_points_are_an_error_naming_the_json(tmp_path, point):
    make_micromat(tmp_path, {"0001_01": {"point": point, "bbox": [1, 2, 6, 7]}})
    with pytest.raises(ValueError, match=r"0001_01\.json"):
        MicroMatFolder(str(tmp_path))[0]


def test_micromat_without_points_or_box(tmp_path):
    make_micromat(tmp_path, {"0001_01": {"point": padded([])}})
    sample = MicroMatFolder(str(tmp_path))[0]
    assert sample.points.shape == (0, 3) and sample.box is None


def test_micromat_listed_file_missing_is_an_error(tmp_path):
    make_micromat(tmp_path, {"0001_01": {"point": [[2, 3, 1]], "bbox": [1, 2, 6, 7]}})
    (tmp_path / "prompt" / "fine" / "0001_01.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"0001_01\.json"):
        MicroMatFolder(str(tmp_path), split="fine")
    assert len(MicroMatFolder(str(tmp_path), split="coarse")) == 1
