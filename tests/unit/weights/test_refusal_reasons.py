"""A file the weights readers refuse: one line naming it and the reason, never torch's advice to
load it with ``weights_only=False``, and the payload never run (issue 23, item 4)."""

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mattekit.errors import RefusedFileError, UsageError
from mattekit.weights.files import load_state_dict, read_weights_only
from mattekit.weights.refusals import NOT_PYTORCH, pickled_globals


class SystemOnUnpickle:
    """Unpickling it would run ``os.system`` (the command only touches a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def refusal(path: Path) -> str:
    with pytest.raises(RefusedFileError) as error:
        load_state_dict(path)
    assert isinstance(error.value, UsageError)  # the CLI prints it in one line, status 2
    message = str(error.value)
    assert "\n" not in message and "weights_only" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__
    return message


@pytest.mark.parametrize("form", ["zip", "bare pickle"])
def test_a_pickled_function_is_named(form, tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "payload.pth"
    payload = {"model": {"w": SystemOnUnpickle(marker)}}
    if form == "zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))  # torch cannot read this protocol
    assert refusal(path) == (
        f"{path}: not a weights-only PyTorch checkpoint: it holds a pickled object of class "
        "'posix.system', which weights-only loading refuses"
    )
    assert not marker.exists()


def test_truncated_random_and_empty_files(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.zeros(64)}, whole)
    truncated, noise, empty = tmp_path / "cut.pth", tmp_path / "noise.pth", tmp_path / "empty.pth"
    truncated.write_bytes(whole.read_bytes()[:300])
    noise.write_bytes(bytes(range(256)) * 8)
    empty.write_bytes(b"")
    assert refusal(truncated) == f"{truncated}: {NOT_PYTORCH}"
    assert refusal(noise) == f"{noise}: {NOT_PYTORCH}"
    assert refusal(empty) == f"{empty}: an empty file, not a PyTorch checkpoint"
    assert torch.equal(load_state_dict(whole)["w"], torch.zeros(64))


def test_a_broken_safetensors_file(tmp_path):
    whole, cut = tmp_path / "whole.safetensors", tmp_path / "cut.safetensors"
    save_file({"w": torch.zeros(8)}, whole)
    cut.write_bytes(whole.read_bytes()[:20])
    assert refusal(cut).startswith(f"{cut}: not a safetensors file (")


def test_a_missing_file_stays_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_weights_only(tmp_path / "none.pth")


def test_pickled_globals_runs_nothing_and_stops_at_non_pickle_bytes(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps(SystemOnUnpickle(marker), protocol=2) + b"\xff" * 64)
    assert pickled_globals(path) == ["posix.system"]
    assert not marker.exists()


def test_a_diffusers_folder_with_broken_weights(tmp_path):
    from diffusers import AutoencoderTiny

    from mattekit.weights.stable_diffusion import from_local_folder

    folder = tmp_path / "taesd"
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8)
    ).save_pretrained(folder)
    assert isinstance(from_local_folder(AutoencoderTiny, folder), AutoencoderTiny)
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"\xff" * 256)
    with pytest.raises(RefusedFileError, match=rf"^{folder}: not a readable diffusers "):
        from_local_folder(AutoencoderTiny, folder)
