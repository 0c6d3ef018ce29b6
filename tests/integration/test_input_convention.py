"""One checkpoint, one input: ``test`` / ``predict`` feed the network as ``matte`` does.

The model owns its input convention (:class:`~mattekit.data.convention.InputConvention`); the
DataModule takes it when the model is set up, and a data flag that contradicts it is an error.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mattekit.cli import main
from mattekit.data.datamodule import MattingDataModule
from mattekit.data.micromat import MicroMatFolder
from mattekit.data.sample import collate_samples
from mattekit.errors import UsageError
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.prompted_images import PromptedImages
from mattekit.prompts.user import read_prompt_file

#: Non-square photos (W x H): the shapes where stretching and letterboxing differ.
SIZES = [(120, 72), (60, 100), (150, 90)]


def write_micromat(root: Path) -> list[Path]:
    """A MicroMat-3K folder of non-square photos with a blob matte and a box prompt each."""
    rng = np.random.default_rng(0)
    lines, photos = [], []
    for folder in ("img", "matte/fine", "prompt/fine"):
        (root / folder).mkdir(parents=True)
    for index, (width, height) in enumerate(SIZES):
        stem = f"{index:04d}"
        ys, xs = np.mgrid[:height, :width]
        blob = ((xs - width / 2) / (width / 4)) ** 2 + ((ys - height / 2) / (height / 4)) ** 2
        alpha = np.clip(1.5 - blob, 0, 1)
        image = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(root / "img" / f"{stem}.png")
        Image.fromarray((alpha * 255).astype(np.uint8)).save(root / "matte/fine" / f"{stem}.png")
        box = [width // 4, height // 4, 3 * width // 4, 3 * height // 4]
        (root / "prompt/fine" / f"{stem}.json").write_text(json.dumps({"bbox": box}))
        lines.append(f"img/{stem}.png matte/fine/{stem}.png prompt/fine/{stem}.json")
        photos.append(root / "img" / f"{stem}.png")
    (root / "data_list.txt").write_text("\n".join(lines) + "\n")
    return photos


def test_test_split_and_matte_agree_on_non_square_photos(tmp_path, save_checkpoint):
    root = tmp_path / "micromat"
    photos = write_micromat(root)
    runner = CheckpointModel(save_checkpoint("zim", tmp_path))
    model = runner.model
    data = MattingDataModule(test=MicroMatFolder(str(root)), eval_batch_size=1, num_workers=0)
    data.use_convention(model.input_convention, "ZIM")
    assert (data.eval_image_size, data.resize) == ((128, 128), "letterbox")
    prompts = [read_prompt_file(root / "prompt/fine" / f"{p.stem}.json") for p in photos]
    matte = runner.dataset(PromptedImages(list(zip(photos, prompts, strict=True))))
    with torch.inference_mode():
        for index, batch in enumerate(data.test_dataloader()):
            ((_, tested),) = model.predict_step(batch, index)
            matted = runner.alpha(collate_samples([matte[index]]))
            assert tested.shape[1:] == matted.shape == SIZES[index][::-1]
            assert np.abs(tested[0].numpy() - matted).max() < 1e-5


def test_a_data_flag_against_the_models_convention_is_an_error(tmp_path, save_checkpoint):
    checkpoint = save_checkpoint("zim", tmp_path)
    argv = ["test", "--model=zim", "--model.variant=tiny", "--ckpt_path", str(checkpoint),
            "--data.resize=stretch", "--data.num_workers=0", "--data.synthetic_eval_samples=2",
            "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    message = r"--data.resize stretch contradicts ZIM's input convention \(128 px letterbox\)"
    with pytest.raises(UsageError, match=message):
        main(argv)
