"""``mattekit convert-labels``: segmentation masks -> mattes with a trained ZIM label converter.

    mattekit convert-labels --ckpt_path CKPT --image_dir images/ --mask_dir masks/ \\
        --output_dir mattes/ [--image_size 1024] [--batch_size 4] [--skip_existing false] \\
        [--device cuda]

How SA1B-Matte was made (ZIM, section 3.1): every image is paired with its mask by file stem,
both resized to the network input, converted, and the matte written as an 8-bit PNG at the
image's stored size. Each PNG is written atomically, so an interrupted run leaves no truncated
file, and a rerun (``skip_existing``, the default) continues where it stopped.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mattekit.atomic_files import write_alpha_png
from mattekit.checkpoint_config import checkpoint_hparams, registered_entry
from mattekit.data.folders import check_same_size, pair_by_stem
from mattekit.data.io import ConversionLog, read_image, read_mask
from mattekit.errors import UsageError, reports_usage_errors
from mattekit.models.evaluation import at_original_size
from mattekit.models.zim_converter.lightning_model import ZIMLabelConverter
from mattekit.models.zim_converter.torch_model import LabelConverter
from mattekit.output_records import (
    RECORD_SUFFIX,
    file_sha256,
    plan_outputs,
    record_inputs,
    start_outputs,
    weights_sha256,
)
from mattekit.pipelines.arguments import boolean

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`convert_folder` did.

    Attributes:
        converted: mattes written by this call.
        skipped: pairs whose matte already existed (``skip_existing``).
        output_dir: where the mattes are.
    """

    converted: int
    skipped: int
    output_dir: Path


def load_converter(checkpoint_path: str | Path) -> ZIMLabelConverter:
    """A trained :class:`ZIMLabelConverter` from a Lightning ``.ckpt``, in eval mode on the CPU.

    The backbone checkpoint the run started from is not read again: the ``.ckpt`` holds every
    weight, and that file need not exist on this machine.

    Raises:
        UsageError naming the file: missing, not a weights-only PyTorch file, or the checkpoint
        of another family (the family it holds is named).
    """
    path = Path(checkpoint_path)
    # Read weights-only first: a refused file, or another family's, is named in one line.
    class_path = checkpoint_hparams(path).get("_class_path")
    if class_path is not None:
        entry = registered_entry(str(class_path), path)
        if entry.cls is not ZIMLabelConverter:
            raise UsageError(
                f"{path} holds a {entry.cls.__name__} model ({entry.alias}), not a label "
                f"converter: give the checkpoint of a zim_converter run"
            )
    model = ZIMLabelConverter.load_from_checkpoint(path, map_location="cpu")
    return model.eval()


def _network(model: ZIMLabelConverter | LabelConverter) -> LabelConverter:
    return model.model if isinstance(model, ZIMLabelConverter) else model


def _read_pair(pair: dict[str, Path], log: ConversionLog) -> tuple[np.ndarray, np.ndarray]:
    """H x W x 3 uint8 image and H x W bool mask, checked to be the same size."""
    image = read_image(pair["image"], log)
    mask = read_mask(pair["mask"], log)
    check_same_size(pair["image"].stem, (pair["image"], image), (pair["mask"], mask))
    if not mask.any():
        logger.warning("%s: the mask is empty; its matte will be (nearly) empty", pair["mask"])
    return image, mask


def _to_network(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """3 x size x size float image in [0, 1] and 1 x size x size float mask.

    Resized the way the data pipeline resizes evaluation samples (bilinear image, nearest
    mask), so the converter sees what it was validated on.
    """
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return image.transpose(2, 0, 1).astype(np.float32) / 255, mask[None].astype(np.float32)


def convert_folder(
    model: ZIMLabelConverter | LabelConverter,
    image_dir: str | Path,
    mask_dir: str | Path,
    output_dir: str | Path,
    image_size: int | None = None,
    batch_size: int = 1,
    skip_existing: bool = True,
    device: str = "cpu",
    overwrite: bool = False,
) -> ConversionSummary:
    """Convert every (image, mask) pair of two folders into ``output_dir/<stem>.png``.

    Args:
        model: a trained converter (see :func:`load_converter`).
        image_dir: photos; mask_dir: segmentation masks (any encoding
            :func:`~mattekit.data.io.read_mask` reads), paired by file stem.
        output_dir: mattes, 8-bit PNG at each image's stored size.
        image_size: network input side (default: the backbone's, e.g. 1024).
        batch_size: pairs per forward pass.
        skip_existing: leave mattes made from the same image, mask, converter weights and
            input size untouched (a rerun resumes); False makes them again.
        device: torch device of the forward passes.
        overwrite: replace mattes made from other inputs (``<stem>.inputs.json`` beside each
            matte records them, :mod:`mattekit.output_records`); without it they are an error.

    Raises:
        FileNotFoundError / ValueError / ImageReadError: naming the folder or file when a folder
            is missing, a stem lacks its counterpart, a file cannot be read, or an image and its
            mask differ in size; UsageError naming a matte made from other inputs (before any
            runs).
    """
    network = _network(model).to(device).eval()
    size = image_size or network.encoder.image_size[0]
    output_dir = Path(output_dir)
    pairs = pair_by_stem({"image": image_dir, "mask": mask_dir}, source_name=str(image_dir))
    converter = weights_sha256(network)
    records = {
        pair["image"].stem: record_inputs(
            image_sha256=file_sha256(pair["image"]),
            mask_sha256=file_sha256(pair["mask"]),
            converter_weights_sha256=converter,
            image_size=size,
        )
        for pair in pairs
    }
    stems = list(records)
    plan = plan_outputs(
        [[output_dir / f"{stem}.png"] for stem in stems],
        [output_dir / f"{stem}{RECORD_SUFFIX}" for stem in stems],
        list(records.values()), skip_existing, overwrite,
    )  # fmt: skip
    todo = [pairs[index] for index in plan.make]
    if plan.done:
        logger.info(
            "%d of %d mattes already made from the same inputs; converting the rest",
            plan.done, len(pairs),
        )  # fmt: skip
    log = ConversionLog(str(mask_dir))
    with tqdm(total=len(todo), desc="convert-labels", unit="image") as progress:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            read = [_read_pair(pair, log) for pair in chunk]
            inputs = [_to_network(image, mask, size) for image, mask in read]
            images = torch.from_numpy(np.stack([i for i, _ in inputs])).to(device)
            masks = torch.from_numpy(np.stack([m for _, m in inputs])).to(device)
            with torch.inference_mode():
                alpha = network(images, masks)["alpha"].float()
            stored_sizes = torch.tensor([image.shape[:2] for image, _ in read])
            content = torch.tensor([[size, size]] * len(chunk))  # stretched: no padding
            mattes = at_original_size(alpha, stored_sizes, content)
            for pair, matte in zip(chunk, mattes, strict=True):
                stem = pair["image"].stem
                path = output_dir / f"{stem}.png"
                start_outputs([path], output_dir / f"{stem}{RECORD_SUFFIX}", records[stem])
                write_alpha_png(path, matte[0].cpu().numpy())
            progress.update(len(chunk))
    return ConversionSummary(len(todo), len(pairs) - len(todo), output_dir)


@reports_usage_errors("mattekit convert-labels")
def convert_labels_main(argv: list[str]) -> None:
    """``mattekit convert-labels``: one flag per :func:`convert_folder` argument."""
    parser = argparse.ArgumentParser(
        prog="mattekit convert-labels",
        description="Convert segmentation masks into mattes with a trained ZIM label converter.",
    )
    parser.add_argument(
        "--ckpt_path", type=Path, required=True, help="Lightning .ckpt of a zim_converter run"
    )
    parser.add_argument("--image_dir", type=Path, required=True, help="folder of images")
    parser.add_argument(
        "--mask_dir", type=Path, required=True, help="masks, same stems as the images"
    )
    parser.add_argument(
        "--output_dir", type=Path, required=True, help="mattes go here as <stem>.png"
    )
    parser.add_argument(
        "--image_size", type=int, default=None, help="network input side (default: the model's)"
    )
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument(
        "--skip_existing", type=boolean, default=True, help="true (default): resume"
    )
    parser.add_argument(
        "--overwrite", type=boolean, default=False,
        help="true: replace mattes made from other inputs (without it they are an error)",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args(argv)
    from mattekit.cli import show_mattekit_logs  # the CLI imports this module lazily

    show_mattekit_logs()
    model = load_converter(args.ckpt_path)  # a refused checkpoint exits 2 (the decorator)
    try:
        summary = convert_folder(
            model,
            args.image_dir,
            args.mask_dir,
            args.output_dir,
            image_size=args.image_size,
            batch_size=args.batch_size,
            skip_existing=args.skip_existing,
            device=args.device,
            overwrite=args.overwrite,
        )
    except UsageError:
        raise  # outputs of other inputs in the way: status 2 (the decorator)
    except (OSError, ValueError) as error:
        parser.exit(1, f"mattekit convert-labels: error: {error}\n")
    print(
        f"{summary.converted} mattes written, {summary.skipped} already there: {summary.output_dir}"
    )
