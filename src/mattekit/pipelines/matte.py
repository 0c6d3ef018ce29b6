"""``mattekit matte``: photos + a prompt + a checkpoint -> alpha PNGs and RGBA cut-outs.

    mattekit matte photos/ --ckpt_path CKPT --box 40,60,300,420 --output_dir cutouts/
    mattekit matte a.jpg --ckpt_path CKPT --point 120,80 --point 30,30,0 --output_dir out/
    mattekit matte "shots/*.png" --ckpt_path CKPT --output_dir out/   # prompts in <stem>.json
    mattekit matte a.jpg --ckpt_path TEXT_CKPT --text "the cat on the left" --output_dir out/
    mattekit matte photos/ --ckpt_path TRIMAP_CKPT --trimap trimaps/ --output_dir out/
    mattekit matte photos/ --ckpt_path AUTOMATIC_CKPT --output_dir out/  # a prompt-free family

Each image gives ``<stem>_alpha.png`` (8-bit, the image's size as displayed) and
``<stem>_cutout.png`` (RGBA, foreground colours estimated), both or neither, and
``<stem>.inputs.json``: the photo's, the checkpoint's and a mask's or trimap's SHA-256, the
prompt, the input settings and mattekit's version. Files are written atomically; a rerun skips
images whose outputs were made from the same inputs (``--skip_existing false`` redoes them) and
refuses to replace outputs made from other inputs without ``--overwrite true``.
"""

from __future__ import annotations

import argparse
import glob
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from mattekit.atomic_files import write_alpha_png, write_png_atomic
from mattekit.data.folders import list_image_files
from mattekit.data.io import IMAGE_EXTENSIONS, photo_size, read_photo
from mattekit.data.sample import collate_samples
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.cutout import cutout
from mattekit.inference.prompted_images import PromptedImages
from mattekit.output_records import (
    RECORD_SUFFIX,
    file_sha256,
    plan_outputs,
    record_inputs,
    start_outputs,
)
from mattekit.pipelines.arguments import boolean
from mattekit.prompts import KINDS
from mattekit.prompts.photo_samples import checked_prompt
from mattekit.prompts.user import (
    UserPrompt,
    parse_box,
    parse_point,
    read_prompt_file,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatteSummary:
    """What :func:`matte_images` did: images matted, images skipped (outputs there), where."""

    matted: int
    skipped: int
    output_dir: Path


def collect_images(inputs: list[str]) -> list[Path]:
    """Image files from files, folders (their images, not recursive) and glob patterns, in the
    order given, each once.

    Raises:
        FileNotFoundError naming an input that is no file, folder or matching pattern;
        ValueError when two images share a stem (their outputs would collide).
    """
    images: list[Path] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            images += list_image_files(path).values()
        elif path.is_file():
            images.append(path)
        else:
            matches = [Path(m) for m in sorted(glob.glob(entry)) if Path(m).is_file()]
            matches = [m for m in matches if m.suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                raise FileNotFoundError(f"{entry}: no such image, folder, or images matching it")
            images += matches
    # One entry per file (a file reached twice, by a link too, is matted once), named as given:
    # a link's prompt json and its outputs go by the link's name and folder, not its target's.
    by_file: dict[Path, Path] = {}
    for path in images:
        by_file.setdefault(path.resolve(), path.absolute())
    unique = list(by_file.values())
    stems: dict[str, Path] = {}
    for path in unique:
        if path.stem in stems:
            raise ValueError(
                f"{stems[path.stem]} and {path} share the stem {path.stem!r}: their outputs "
                "would overwrite each other; matte them into different --output_dir"
            )
        stems[path.stem] = path
    return unique


def prompts_for(
    images: list[Path], given: UserPrompt | None, files: dict[str, Path | None] | None = None
) -> list[UserPrompt]:
    """``given`` for every image, else each image's ``<stem>.json`` beside it, else an empty
    prompt (which only a prompt-free family runs on).

    Args:
        files: ``{"mask": path, "trimap": path}`` from the command line: a file for every
            image, or a folder holding ``<stem>.<ext>`` for each.

    Raises:
        FileNotFoundError naming the flag and the images without a file (before anything runs).
    """
    files = {name: path for name, path in (files or {}).items() if path is not None}
    per_image: dict[str, list[Path]] = {}
    for name, path in files.items():
        found = list_image_files(path) if path.is_dir() else None
        if found is not None and (absent := [p for p in images if p.stem not in found]):
            listed = ", ".join(p.name for p in absent[:3])
            raise FileNotFoundError(f"--{name} {path}: no {name} for {listed}")
        if found is None and not path.is_file():
            raise FileNotFoundError(f"--{name} {path}: no such file or folder")
        per_image[name] = [found[p.stem] if found else path for p in images]
    if per_image or given is not None:
        given = given or UserPrompt()
        return [
            replace(given, **{name: paths[i] for name, paths in per_image.items()})
            for i in range(len(images))
        ]
    return [
        read_prompt_file(p.with_suffix(".json"))
        if p.with_suffix(".json").is_file()
        else UserPrompt(origin=f"{p} (no prompt: no flag and no {p.stem}.json beside it)")
        for p in images
    ]


def output_paths(output_dir: Path, image: Path) -> tuple[Path, Path]:
    """``(<stem>_alpha.png, <stem>_cutout.png)`` in ``output_dir``."""
    return output_dir / f"{image.stem}_alpha.png", output_dir / f"{image.stem}_cutout.png"


def record_path(output_dir: Path, image: Path) -> Path:
    """``<stem>.inputs.json``: what made the image's outputs (:mod:`mattekit.output_records`)."""
    return output_dir / f"{image.stem}{RECORD_SUFFIX}"


def matte_images(
    runner: CheckpointModel,
    items: list[tuple[Path, UserPrompt]],
    output_dir: str | Path,
    kind: str = "auto",
    skip_existing: bool = True,
    with_cutout: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> MatteSummary:
    """Matte every ``(image, prompt)``; see the module docstring for the outputs.

    Args:
        runner: the checkpoint (:class:`CheckpointModel`).
        kind: the prompt kind to run (``auto``: the first of :data:`~mattekit.prompts.KINDS`
            the prompt has and the model takes).
        skip_existing: leave images whose outputs exist and were made from the same photo,
            prompt, checkpoint and settings (a rerun resumes).
        with_cutout: also write the RGBA cut-out.
        overwrite: replace outputs made from other inputs (without it they are an error).

    Raises:
        ValueError naming the photo or the prompt's origin when a prompt has no kind the model
        takes, when a photo is too small or a click or the box lies outside it; UsageError
        when outputs made from other inputs are in the way (all checked for every image before
        any runs).
    """
    output_dir = Path(output_dir)
    kinds = [prompt.kind_for(runner.accepted_prompts, kind) for _, prompt in items]
    items = [(image, replace(p, kind=k)) for (image, p), k in zip(items, kinds, strict=True)]
    for image, prompt in items:
        checked_prompt(prompt, *photo_size(image), image)
    _say_unused_kinds(items, kinds)
    inputs = [
        record_inputs(
            photo_sha256=file_sha256(image),
            prompt=prompt.record(),
            kind=chosen,
            checkpoint_sha256=runner.sha256,
            side=runner.side,
            resize=runner.resize,
        )
        for (image, prompt), chosen in zip(items, kinds, strict=True)
    ]
    files = [output_paths(output_dir, image)[: 2 if with_cutout else 1] for image, _ in items]
    records = [record_path(output_dir, image) for image, _ in items]
    plan = plan_outputs(files, records, inputs, skip_existing, overwrite)
    if plan.done:
        logger.info("%d of %d images already matted from the same inputs: skipped",
                    plan.done, len(items))  # fmt: skip
    dataset = runner.dataset(PromptedImages(items))
    with torch.inference_mode():
        for index in tqdm(plan.make, "matte", unit="image", disable=not progress):
            alpha = runner.alpha(collate_samples([dataset[index]]))
            # Both computed before either is written: an image gets the pair or neither.
            rgba = cutout(read_photo(items[index][0]), alpha) if with_cutout else None
            start_outputs(files[index], records[index], inputs[index])
            if rgba is not None:
                write_png_atomic(files[index][1], rgba)
            write_alpha_png(files[index][0], alpha)
    return MatteSummary(len(plan.make), plan.done, output_dir)


def _say_unused_kinds(items: list[tuple[Path, UserPrompt]], kinds: list[str]) -> None:
    """Warn, once a run, when a prompt has kinds that are not run (``--box`` with ``--point``:
    the families read one prompt kind at a time)."""
    for (image, prompt), chosen in zip(items, kinds, strict=True):
        unused = [other for other in prompt.kinds if other != chosen]
        if unused:
            logger.warning(
                "%s: the prompt has %s; %s is run and %s left unused (the family reads one "
                "prompt kind at a time; --kind chooses)",
                prompt.origin if prompt.origin != "command line" else image.name,
                " and ".join(prompt.kinds), chosen, ", ".join(unused),
            )  # fmt: skip
            return


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mattekit matte",
        description="Alpha mattes and RGBA cut-outs of photos with a trained checkpoint.",
        epilog="Without a prompt flag each image's prompt is <stem>.json beside it: "
        "MicroMat-3K's format ('point': [[x, y, label], ...], 'bbox': [x0, y0, x1, y1]), plus "
        "optional 'text', 'mask' and 'trimap' (file paths). A prompt-free family needs none.",
    )
    parser.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a run's Lightning .ckpt")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument(
        "--point", action="append", default=[], metavar="X,Y[,LABEL]",
        help="a click in image pixels, label 1 (default) positive or 0 negative; repeatable",
    )  # fmt: skip
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1", help="a box in image pixels")
    parser.add_argument("--mask", type=Path, help="a mask file, or a folder of <stem> masks")
    parser.add_argument(
        "--trimap", type=Path, help="a trimap file, or a folder of <stem> trimaps (0/128/255)"
    )
    parser.add_argument("--text", help="a referring expression (text-prompted families)")
    parser.add_argument(
        "--kind", default="auto", choices=["auto", *KINDS],
        help=f"the prompt kind to run (auto: the first of {', '.join(KINDS)} the prompt has "
        "and the model takes)",
    )  # fmt: skip
    parser.add_argument("--image_size", type=int, help="network input side (default: the run's)")
    parser.add_argument("--resize", choices=["stretch", "letterbox"], help="default: the run's")
    parser.add_argument("--config", type=Path, help="the run's config.yaml, if not beside it")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument(
        "--skip_existing", type=boolean, default=True,
        help="true: leave images whose outputs were made from the same inputs (resume)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", type=boolean, default=False,
        help="true: replace outputs made from another photo, prompt, checkpoint or settings "
        "(without it they are an error)",
    )  # fmt: skip
    parser.add_argument("--cutout", type=boolean, default=True, help="write RGBA cut-outs")
    return parser


def matte_main(argv: list[str]) -> int:
    """``mattekit matte``: see the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        images = collect_images(args.inputs)
        given = None
        if args.point or args.box or args.text:
            given = UserPrompt(
                points=tuple(parse_point(p) for p in args.point),
                box=parse_box(args.box) if args.box else None,
                text=args.text,
            )
        files = {"mask": args.mask, "trimap": args.trimap}
        items = list(zip(images, prompts_for(images, given, files), strict=True))
        runner = CheckpointModel(
            args.ckpt_path, args.device, args.image_size, args.resize, args.config
        )
        summary = matte_images(
            runner, items, args.output_dir, args.kind, args.skip_existing, args.cutout,
            overwrite=args.overwrite,
        )  # fmt: skip
    except (OSError, ValueError) as error:
        parser.exit(2, f"mattekit matte: error: {error}\n")
    print(f"{summary.matted} images matted, {summary.skipped} already done: {summary.output_dir}")
    return 0
