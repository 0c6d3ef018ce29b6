"""Prediction pictures: layout, labels, the samples saved beside them, comparison figures."""

from pathlib import Path

import torch
from torchvision.io import decode_png, read_file

from mattekit.pipelines.grid import figure as grid_figure
from mattekit.pipelines.grid.results import GridResults
from mattekit.pipelines.grid.spec import GridSpec
from mattekit.visualize import logged_samples, prediction_grid, to_uint8, write_samples

SIZE = 32


def samples(synthetic_batch, count: int = 2) -> dict[str, torch.Tensor]:
    batch = synthetic_batch(SIZE, count)
    return logged_samples(batch, torch.full_like(batch.alpha, 0.25), count)


def tile(grid: torch.Tensor, row: int, column: int, top: int = 0, size: int = SIZE) -> torch.Tensor:
    """The tile at (row, column) of a make_grid picture (padding 2) below a ``top`` header."""
    y, x = top + 2 + row * (size + 2), 2 + column * (size + 2)
    return grid[:, y : y + size, x : x + size]


def test_one_row_per_sample_and_one_column_per_prediction(synthetic_batch):
    logged = samples(synthetic_batch)
    one = prediction_grid(logged, {"": logged["prediction"]})
    assert one.shape == (3, 2 + 2 * (SIZE + 2), 2 + 4 * (SIZE + 2))  # no labels, no header
    assert (tile(one, 1, 3) == round(0.25 * 255)).all()  # the prediction of sample 1
    gt = (logged["alpha"][1].expand(3, -1, -1) * 255).round().to(torch.uint8)
    assert torch.equal(tile(one, 1, 2), gt)

    ones = torch.ones_like(logged["prediction"])
    two = prediction_grid(logged, {"a": logged["prediction"], "b": ones})
    top = two.shape[1] - one.shape[1]  # the label strip
    assert top > 0 and two.shape[2] == 2 + 5 * (SIZE + 2)
    assert (tile(two, 0, 4, top) == 255).all() and (tile(two, 0, 3, top) == 64).all()
    assert (two[:, :top] < 128).any()  # the labels are written (dark text on white)


def test_saved_samples_read_back_weights_only(synthetic_batch, tmp_path: Path):
    logged = samples(synthetic_batch)
    write_samples(logged, tmp_path / "predictions_test.pt")
    loaded = torch.load(tmp_path / "predictions_test.pt", weights_only=True)
    assert all(torch.equal(loaded[key], logged[key]) for key in logged)
    assert [p.name for p in tmp_path.iterdir()] == ["predictions_test.pt"]  # no temporary left


def fake_run(root: Path, index: int, logged: dict, prediction: float) -> dict:
    run_dir = root / str(index)
    write_samples(
        {**logged, "prediction": torch.full_like(logged["prediction"], prediction)},
        run_dir / "test" / "predictions_test.pt",
    )
    return {"run": index, "seed": 0, "model.decoder": f"d{index}", "run_dir": str(run_dir)}


def test_comparison_figure_of_a_grid(synthetic_batch, tmp_path: Path):
    spec = GridSpec(name="g", base=(), grid={"model.decoder": ("d0", "d1")})
    results = GridResults(tmp_path / "g", ["model.decoder"])
    logged = samples(synthetic_batch)
    results.runs = [fake_run(tmp_path, 0, logged, 0.0), fake_run(tmp_path, 1, logged, 1.0)]
    figure = tmp_path / "g.png"
    assert grid_figure.write_comparison_figure(spec, results, figure)
    picture = decode_png(read_file(str(figure)))
    size = grid_figure.FIGURE_TILE  # small samples are drawn larger, to leave room for the labels
    top = picture.shape[1] - (2 + 2 * (size + 2))
    assert picture.shape[2] == 2 + 5 * (size + 2)
    assert (tile(picture, 0, 3, top, size) == 0).all()
    assert (tile(picture, 0, 4, top, size) == 255).all()

    # Runs that saw other samples are not put side by side.
    other = {**logged, "image": logged["image"].flip(-1)}
    results.runs[1] = fake_run(tmp_path, 1, other, 1.0)
    figure.unlink()
    assert not grid_figure.write_comparison_figure(spec, results, figure) and not figure.exists()


def test_long_labels_wrap_inside_their_columns(synthetic_batch):
    logged = samples(synthetic_batch)
    columns = {"a=1": logged["prediction"], "b=2": logged["prediction"]}
    short = prediction_grid(logged, columns)
    label = "decoder=hierarchical, attention_directions=t2i+i2t"
    wrapped = prediction_grid(logged, {label: logged["prediction"], " ": logged["prediction"]})
    assert wrapped.shape[2] == short.shape[2]  # same columns, same width
    assert wrapped.shape[1] > short.shape[1] + 20  # the long label took several lines
    header = wrapped[:, : wrapped.shape[1] - (2 + 2 * (SIZE + 2))]
    column_width = wrapped.shape[2] / 5
    ink = (header < 128).any(0).any(0).nonzero().flatten()
    # The long label (column 3 of 5) stays within its column; the last column's label is blank.
    assert 3 * column_width < ink.max() < 4 * column_width


def test_the_picture_shows_only_the_prompt_the_model_was_given(synthetic_batch):
    batch = synthetic_batch(SIZE, 1)
    batch.coarse_mask[:] = 0.0
    batch.coarse_mask[0, 0, 8:16, 8:16] = 1.0
    masked = logged_samples(batch, batch.alpha, 1, kinds="mask")
    assert (masked["point_labels"] == -1).all() and masked["box"].eq(0).all()
    boxed = logged_samples(batch, batch.alpha, 1, kinds="box")
    assert boxed["coarse_mask"].eq(0).all() and torch.equal(boxed["box"], batch.box[:1])
    image = to_uint8(batch.image[0])
    overlay = tile(prediction_grid(masked, {"": masked["prediction"]}), 0, 1)
    changed = (overlay != image).any(dim=0)
    assert changed[8:16, 8:16].all() and not changed[20:, 20:].any()  # the mask, tinted, alone


def test_a_text_prompt_is_written_on_the_prompt_tile(synthetic_batch, tmp_path: Path):
    batch = synthetic_batch(128, 1)
    samples = logged_samples(batch, batch.alpha, 1, kinds="text")
    assert samples["text"] == batch.text[:1] and batch.text[0]
    assert samples["box"].eq(0).all() and (samples["point_labels"] == -1).all()
    write_samples(samples, tmp_path / "samples.pt")
    assert torch.load(tmp_path / "samples.pt", weights_only=True)["text"] == batch.text[:1]
    overlay = tile(prediction_grid(samples, {"": samples["prediction"]}), 0, 1, size=128)
    changed = (overlay != to_uint8(batch.image[0])).any(dim=0)
    assert changed[:8].all() and not changed[64:].any()  # the caption band at the top only
