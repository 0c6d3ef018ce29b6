"""SyntheticSource: determinism, the RawSample contract, instance kinds, text, compositing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mattekit.data.synthetic import INSTANCE_KINDS, SyntheticSource, _transmission


def _source(**overrides) -> SyntheticSource:
    args = {"num_samples": 50, "image_size": 64, "seed": 0}
    args.update(overrides)
    return SyntheticSource(**args)


def _arrays(sample) -> dict[str, np.ndarray]:
    return {"image": sample.image, "alpha": sample.alpha, "fg": sample.fg, "bg": sample.bg}


def test_same_seed_and_index_give_identical_scenes_whatever_the_pipeline_rng():
    first = _source().load(7, np.random.default_rng(1))
    second = _source().load(7, np.random.default_rng(12345))
    for name, value in _arrays(first).items():
        np.testing.assert_array_equal(value, _arrays(second)[name], err_msg=name)
    assert first.text == second.text
    assert first.sample_id == second.sample_id == "synthetic/s0/000007"


def test_other_index_or_seed_gives_another_scene():
    base = _source()[3]
    assert not np.array_equal(base.image, _source()[4].image)
    assert not np.array_equal(base.image, _source(seed=1)[3].image)
    assert _source(seed=1)[3].sample_id == "synthetic/s1/000003"


@pytest.mark.parametrize("image_size", [64, (48, 80)])
def test_sample_matches_raw_sample_contract(image_size):
    source = _source(image_size=image_size, name="synth")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    sample = source[0]
    assert sample.image.shape == (height, width, 3) and sample.image.dtype == np.uint8
    assert sample.alpha.shape == (height, width) and sample.alpha.dtype == np.float32
    for name in ("fg", "bg"):
        value = getattr(sample, name)
        assert value.shape == (height, width, 3) and value.dtype == np.uint8, name
    assert sample.trimap is None and sample.seg_mask is None
    assert sample.points is None and sample.box is None
    assert sample.source == "synth"
    assert sample.sample_id.startswith("synth/s0/")
    assert len(source) == 50


def test_alpha_in_unit_range_and_target_visible_in_every_scene():
    source = _source(num_samples=40, max_instances=6)
    for index in range(len(source)):
        alpha = source[index].alpha
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0, index
        assert alpha.max() > 0.5 and (alpha > 0.1).sum() >= 20, index


def test_furry_targets_have_many_fractional_pixels():
    source = _source(num_samples=10, kinds=["furry"])
    for index in range(len(source)):
        alpha = source[index].alpha
        fractional = ((alpha > 0.02) & (alpha < 0.98)).sum()
        assert fractional > 0.25 * (alpha >= 0.98).sum(), index


def test_glass_targets_are_transparent_with_a_faint_interior():
    source = _source(num_samples=10, kinds=["glass"])
    for index in range(len(source)):
        sample = source[index]
        assert sample.is_transparent
        covered = sample.alpha[sample.alpha > 0.05]
        assert np.median(covered) < 0.8, index


def test_solid_and_holes_targets_are_opaque_with_soft_edges():
    for kind in ("solid", "holes"):
        source = _source(num_samples=6, kinds=[kind])
        for index in range(len(source)):
            sample = source[index]
            assert not sample.is_transparent
            covered = sample.alpha[sample.alpha > 0.02]
            assert (covered > 0.98).mean() > 0.5, (kind, index)
            assert (covered < 0.98).any(), (kind, index)  # anti-aliased edges


def test_every_kind_appears_by_default():
    source = _source(num_samples=40)
    scenes = [source.render(index) for index in range(len(source))]
    kinds = {scene.layers[scene.target].spec.kind for scene in scenes}
    assert kinds == set(INSTANCE_KINDS)


def test_text_names_the_target_colour_and_kind_word():
    source = _source(num_samples=30, difficulty=1.0, max_instances=6)
    for index in range(len(source)):
        scene = source.render(index)
        spec = scene.layers[scene.target].spec
        text = scene.sample.text
        assert text.startswith("the "), text
        assert re.search(rf"\b{spec.colour_name}\b", text), (text, spec)
        assert re.search(rf"\b{spec.descriptor}\b", text), (text, spec)
        assert re.search(rf"\b{spec.shape}\b", text), (text, spec)


def test_text_adds_position_when_a_distractor_shares_colour_and_shape():
    source = _source(num_samples=60, difficulty=1.0, max_instances=6)
    position_words = ("left", "right", "top", "bottom", "center")
    seen = 0
    for index in range(len(source)):
        scene = source.render(index)
        spec = scene.layers[scene.target].spec
        twins = [
            layer
            for i, layer in enumerate(scene.layers)
            if i != scene.target
            and (layer.spec.colour_name, layer.spec.shape) == (spec.colour_name, spec.shape)
        ]
        if twins:
            seen += 1
            assert any(word in scene.sample.text for word in position_words), scene.sample.text
    assert seen > 0


def _composite_error(sample) -> float:
    alpha = sample.alpha[..., None].astype(np.float64)
    recomposed = alpha * sample.fg + (1.0 - alpha) * sample.bg
    return float(np.abs(recomposed - sample.image).max())


def test_compositing_invariant_holds_for_the_target_alpha():
    source = _source(num_samples=30, image_size=80, max_instances=6)
    for index in range(len(source)):
        assert _composite_error(source[index]) <= 1.5, index


def test_compositing_invariant_holds_when_the_target_is_partly_occluded():
    source = _source(num_samples=200, image_size=80, min_instances=5, max_instances=8)
    occluded = 0
    for index in range(len(source)):
        scene = source.render(index)
        own = scene.layers[scene.target]
        hidden = own.alpha * (1.0 - _transmission(scene.layers, scene.target))
        if hidden.sum() < 5.0:
            continue
        occluded += 1
        assert _composite_error(scene.sample) <= 1.5, index
        if occluded == 5:
            break
    assert occluded > 0


def test_difficulty_and_kinds_change_the_scenes():
    easy, hard = _source(difficulty=0.0)[5], _source(difficulty=1.0)[5]
    assert not np.array_equal(easy.image, hard.image)
    glass_only = _source(kinds=["glass"])
    assert not np.array_equal(glass_only[5].image, _source()[5].image)
    for index in range(10):
        scene = glass_only.render(index)
        assert {layer.spec.kind for layer in scene.layers} == {"glass"}


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"min_instances": 3, "max_instances": 2}, "max_instances"),
        ({"min_instances": 0}, "min_instances"),
        ({"kinds": ["solid", "plush"]}, "kinds"),
        ({"kinds": []}, "kinds"),
        ({"difficulty": 1.5}, "difficulty"),
        ({"image_size": 8}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"image_size": 32, "max_instances": 16}, "max_instances"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(overrides, argument):
    with pytest.raises(ValueError, match=argument):
        _source(**overrides)


def test_index_out_of_range_raises_index_error():
    source = _source(num_samples=5)
    with pytest.raises(IndexError):
        source[5]
    with pytest.raises(IndexError):
        source.load(5, np.random.default_rng(0))
    with pytest.raises(IndexError):
        source.load(-1, np.random.default_rng(0))
