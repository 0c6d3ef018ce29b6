"""The benchmark's parts: its spec, stored prompts, trimap rule, classical and floor rows,
per-image scoring (issue 9)."""

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch
from pymatting import estimate_alpha_cf, estimate_alpha_knn

from mattekit.data.dataset import MattingDataset, evaluation_rng
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import RawSample
from mattekit.data.synthetic import SyntheticSource
from mattekit.data.transforms import MattingTransform
from mattekit.metrics import matting_metrics
from mattekit.nn.prompt_maps import box_mask
from mattekit.pipelines.benchmark.classical import (
    box_alpha,
    classical_alpha,
    derived_trimap,
    floor_alpha,
)
from mattekit.pipelines.benchmark.measure import WarmTimer
from mattekit.pipelines.benchmark.prompt_store import (
    PromptsConflict,
    PromptStore,
    StoredPrompt,
    StoredPromptSource,
    file_stem,
)
from mattekit.pipelines.benchmark.runner import Scorer, Timing
from mattekit.pipelines.benchmark.sample_cache import CachedSource
from mattekit.pipelines.benchmark.spec import Protocol, parse_benchmark

SPEC = """
name: tiny
protocol: {prompts: [box, mask]}
datasets:
  - name: shapes
    source: {class_path: mattekit.data.synthetic.SyntheticSource, init_args: {num_samples: 3}}
methods:
  - {name: prompt as alpha, kind: floor}
  - {name: closed-form, kind: classical, algorithm: closed_form}
"""


def write_spec(tmp_path, text=SPEC):
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    return path


def test_spec_reads_yaml_and_command_line_overrides(tmp_path):
    path = write_spec(tmp_path)
    spec, config = parse_benchmark([str(path), "--protocol.seed=4", "--workers=2"])
    assert config == path and spec.protocol.seed == 4 and spec.workers == 2
    assert spec.protocol.prompts == ["box", "mask"] and spec.protocol.preset == "dim"
    assert [m.kind for m in spec.methods] == ["floor", "classical"]
    assert isinstance(spec.datasets[0].source, SyntheticSource)
    assert spec.output_dir(config) == tmp_path / "results" / "tiny"


def test_the_config_flag_writes_beside_the_config_as_the_positional_form_does(tmp_path):
    path = write_spec(tmp_path)
    spec, config = parse_benchmark(["--config", str(path)])
    assert spec.output_dir(config) == tmp_path / "results" / "tiny"
    spec, config = parse_benchmark([f"--config={path}", "--output", str(tmp_path / "elsewhere")])
    assert spec.output_dir(config) == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--force=[knn]"], "unknown methods"),
        (["--protocol.clicks=0"], "clicks"),
        (["--workers=0"], "workers"),
        (["--protocol.prompts=[clicks]"], "protocol.prompts"),
        (["--protocol.preset=mine"], "protocol.preset"),
        (["--unknown=1"], "--unknown"),
    ],
)
def test_spec_errors_name_the_argument(tmp_path, change, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_benchmark([str(write_spec(tmp_path)), *change])


def test_spec_refuses_repeated_method_names(tmp_path):
    text = SPEC.replace("closed-form, kind: classical", "prompt as alpha, kind: classical")
    with pytest.raises(ValueError, match="repeated"):
        parse_benchmark([str(write_spec(tmp_path, text))])


def synthetic(count=3, size=48):
    return SyntheticSource(count, image_size=size, seed=7, name="shapes")


def test_stored_prompts_are_byte_identical_when_made_again(tmp_path):
    protocol = Protocol(prompts=["box", "points"], clicks=2, seed=3)
    for folder in ("a", "b"):
        PromptStore(tmp_path / folder, protocol).make(synthetic(), progress=False)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "manifest.json" in files and len(files) == 1 + 3 * 3  # json, mask, trimap each
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_stored_prompts_follow_the_protocol_and_refuse_other_settings(tmp_path):
    store = PromptStore(tmp_path, Protocol(clicks=2, seed=3))
    source = synthetic()
    store.make(source, progress=False)
    raw = source.load(0, np.random.default_rng([3, 0]))
    prompt = store.read(0, raw)
    assert prompt.points.shape == (2, 3) and (prompt.points[:, 2] == 1).all()
    assert (raw.alpha[prompt.points[:, 1].astype(int), prompt.points[:, 0].astype(int)] > 0).all()
    assert prompt.coarse_mask.shape == raw.size and set(np.unique(prompt.coarse_mask)) <= {0, 1}
    assert not prompt.trimap_from_dataset  # synthetic scenes have no trimap: sampled from the GT
    with pytest.raises(PromptsConflict, match="seed"):
        PromptStore(tmp_path, Protocol(clicks=2, seed=4)).make(source, progress=False)
    with pytest.raises(PromptsConflict, match="prompt_config"):
        PromptStore(tmp_path, Protocol(clicks=1, seed=3)).make(source, progress=False)


def test_a_model_sees_the_stored_prompts_at_its_own_input_size(tmp_path):
    """The same box, clicks and coarse mask, moved to a 32 px letterboxed input."""
    protocol = Protocol(seed=1)
    source = synthetic(size=64)
    store = PromptStore(tmp_path, protocol)
    store.make(source, progress=False)
    dataset = MattingDataset(
        StoredPromptSource(source, store),
        MattingTransform((32, 32), train=False, resize="letterbox"),
        PromptSampler(PromptConfig()),
        train=False,
        seed=protocol.seed,
    )
    item = dataset[1]
    stored = store.read(1, source.load(1, np.random.default_rng([1, 1])))
    # Scaled by 32 / 64 and clipped to the input's last pixel, as the pipeline moves any box.
    torch.testing.assert_close(item["box"], (torch.from_numpy(stored.box) * 0.5).clamp(max=31))
    torch.testing.assert_close(item["points"][0], torch.from_numpy(stored.points[0, :2]) * 0.5)
    assert item["point_labels"][0] == 1 and (item["point_labels"][1:] == -1).all()
    expected_mask = torch.from_numpy(stored.coarse_mask[::2, ::2]).float()
    assert (item["coarse_mask"][0] == expected_mask).float().mean() > 0.97


def test_sample_ids_become_safe_file_names():
    assert file_stem("synthetic/s0/000042") == "synthetic__s0__000042"
    assert file_stem("../a b") == "..__a_b"


def prompt_with(box=(4, 6, 19, 25), mask=None, size=(32, 32)):
    mask = np.zeros(size, np.uint8) if mask is None else mask
    no_clicks = np.zeros((0, 3), np.float32)
    return StoredPrompt(no_clicks, np.array(box, np.float32), mask, np.zeros(size, np.uint8), False)


def test_derived_trimap_from_a_box_and_from_a_mask():
    trimap = derived_trimap(prompt_with(box=(3, 6, 14, 20)), "box", (32, 32))
    assert (trimap[:6] == 0).all() and (trimap[:, 15:] == 0).all()  # outside the box
    assert trimap[13, 8] == 255 and trimap[6, 3] == 128  # centre third / edge band
    assert (trimap[11:16, 7:11] == 255).all() and set(np.unique(trimap)) == {0, 128, 255}
    mask = np.zeros((50, 50), np.uint8)
    mask[10:30, 10:30] = 1
    trimap = derived_trimap(prompt_with(mask=mask, size=(50, 50)), "mask", (50, 50))
    assert (trimap[12:28, 12:28] == 255).all() and trimap[10, 10] == 128  # band = 1 px at 50
    assert trimap[5, 5] == 0 and trimap[9, 20] == 128 and trimap[8, 20] == 0
    with pytest.raises(ValueError, match="points"):
        derived_trimap(prompt_with(), "points", (32, 32))


def test_classical_alpha_is_pymatting_called_directly_and_recovers_a_matte():
    rng = np.random.default_rng(0)
    alpha = np.zeros((24, 24))
    alpha[:, 12:] = 1.0
    alpha[:, 11] = 0.5
    fg, bg = rng.uniform(0.6, 1.0, 3), rng.uniform(0.0, 0.3, 3)
    image = np.round((alpha[..., None] * fg + (1 - alpha[..., None]) * bg) * 255).astype(np.uint8)
    trimap = np.full((24, 24), 128, np.uint8)
    trimap[:, :8] = 0
    trimap[:, 16:] = 255
    for name, direct in (("closed_form", estimate_alpha_cf), ("knn", estimate_alpha_knn)):
        ours = classical_alpha(name, image, trimap)
        np.testing.assert_array_equal(ours, direct(image / 255.0, trimap / 255.0))
        assert np.abs(ours - alpha).mean() < 0.05, name


def test_a_trimap_with_one_known_label_gets_the_constant_solution():
    image = np.random.default_rng(0).integers(0, 255, (6, 6, 3)).astype(np.uint8)
    trimap = np.full((6, 6), 128, np.uint8)
    trimap[0] = 0  # background only: pymatting refuses; the equations give alpha = 0
    np.testing.assert_array_equal(classical_alpha("closed_form", image, trimap), np.zeros((6, 6)))
    trimap[0] = 255
    np.testing.assert_array_equal(classical_alpha("knn", image, trimap), np.ones((6, 6)))


def test_floor_is_each_kinds_region_as_the_models_reference_draws_it():
    prompt = prompt_with(box=(2.4, 3.0, 10.6, 7.5))
    expected = box_mask(torch.tensor([[2.4, 3.0, 10.6, 7.5]]), (12, 16))[0, 0].numpy()
    np.testing.assert_array_equal(floor_alpha(prompt, "box", (12, 16)), expected)
    np.testing.assert_array_equal(box_alpha(prompt.box, (12, 16)), expected)
    # Clicks and text cover no area: their floor is the box they point into.
    np.testing.assert_array_equal(floor_alpha(prompt, "points", (12, 16)), expected)
    np.testing.assert_array_equal(floor_alpha(prompt, "text", (12, 16)), expected)
    mask = np.eye(8, dtype=np.uint8)
    np.testing.assert_array_equal(floor_alpha(prompt_with(mask=mask), "mask", (8, 8)), mask)
    trimap = np.array([[0, 128, 255]], np.uint8)
    floor = floor_alpha(dataclasses.replace(prompt, trimap=trimap), "trimap", (1, 3))
    np.testing.assert_array_equal(floor, np.array([[0, 0.5, 1]], np.float32))
    with pytest.raises(ValueError, match="not 'none'"):
        floor_alpha(prompt, "none", (12, 16))


def test_scorer_equals_the_metric_collection_and_uses_only_a_datasets_trimap():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 1, (20, 30)).astype(np.float32)
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)
    trimap = np.full(gt.shape, 128, np.uint8)
    trimap[:5] = 0
    as_batch = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    for with_trimap, expected_trimap in ((True, trimap), (False, None)):
        collection = matting_metrics("dim")
        region = as_batch(expected_trimap) if expected_trimap is not None else None
        collection.update(as_batch(pred), as_batch(gt), region)
        expected = {k: float(v) for k, v in collection.compute().items()}
        scored = Scorer(Protocol(with_trimap=with_trimap))(pred, gt, trimap)
        assert scored == pytest.approx(expected, rel=1e-12)
    whole = Scorer(Protocol())(pred, gt, None)  # no dataset trimap: the whole image
    assert whole == pytest.approx(Scorer(Protocol(with_trimap=False))(pred, gt, trimap), rel=1e-12)
    # A whole-image preset never looks at the trimap.
    zim = Scorer(Protocol(preset="zim"))
    assert zim(pred, gt, trimap) == pytest.approx(zim(pred, gt, None), rel=1e-12)


def test_a_sources_coarse_mask_is_kept_as_the_prompt():
    alpha = np.zeros((16, 16), np.float32)
    alpha[4:12, 4:12] = 1
    given = np.zeros((16, 16), np.uint8)
    given[0:3, 0:3] = 1
    sampler = PromptSampler(PromptConfig())
    drawn = sampler(alpha, np.random.default_rng(0), "s", coarse_mask=given)
    np.testing.assert_array_equal(drawn.coarse_mask, given)
    own = PromptSampler(PromptConfig(use_source_prompts=False))
    ignored = own(alpha, np.random.default_rng(0), "s", coarse_mask=given)
    assert not np.array_equal(ignored.coarse_mask, given)
    raw = RawSample("r", np.zeros((16, 16, 3), np.uint8), alpha, coarse_mask=given)
    moved = MattingTransform((8, 8), train=False)(raw, np.random.default_rng(0))
    assert moved.coarse_mask.shape == (8, 8) and moved.coarse_mask[0, 0] == 1


def test_warm_timer_calls_once_untimed_then_times_every_call():
    calls = []
    timer = WarmTimer()
    result, seconds = timer(lambda: calls.append(1) or len(calls))
    assert (result, len(calls)) == (2, 2) and seconds >= 0
    result, _ = timer(lambda: calls.append(1) or len(calls))
    assert (result, len(calls)) == (3, 3)


def test_overhead_leaves_the_stages_training_aside():
    assert Timing(total=100.0, stages=60.0, methods=36.0).overhead == pytest.approx(0.1)
    assert math.isnan(Timing(total=5.0, stages=5.0).overhead)


def test_cached_source_loads_once_per_generator_state_and_leaves_the_generator_as_a_load():
    source = SyntheticSource(num_samples=3, image_size=32, seed=5)
    cached = CachedSource(source)
    first_rng, plain_rng = evaluation_rng(0, 1), evaluation_rng(0, 1)
    first = cached.load(1, first_rng)
    plain = source.load(1, plain_rng)
    assert np.array_equal(first.image, plain.image) and np.array_equal(first.alpha, plain.alpha)
    again_rng = evaluation_rng(0, 1)
    assert cached.load(1, again_rng) is first  # reused, not rendered again
    # the generator continues as after a real load: the caller's next draws are unchanged
    assert again_rng.random() == plain_rng.random() == first_rng.random()
    other = cached.load(1, evaluation_rng(7, 1))  # another starting state: a real load
    assert other is not first
    assert not pickle.loads(pickle.dumps(cached))._kept  # a worker gets no samples
    tiny = CachedSource(source, budget_bytes=0)
    assert tiny.load(0, evaluation_rng(0, 0)) is not tiny.load(0, evaluation_rng(0, 0))
