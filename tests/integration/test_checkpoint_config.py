"""``--ckpt_path`` and ``load_from_checkpoint``: weights-only, registered classes only, and the
command line's settings kept (issue 8, bugs 1, 2 and 5)."""

import functools
import http.server
import pickle
import sys
import threading
from pathlib import Path

import pytest
import torch

from mattekit.checkpoint_config import CheckpointConfigError
from mattekit.cli import main
from mattekit.models.baseline.lightning_model import Baseline

DATA = [
    "--data.image_size=32",
    "--data.batch_size=2",
    "--data.num_workers=0",
    "--data.synthetic_train_samples=4",
    "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
]
BASELINE = ["--model", "baseline", "--model.base_channels=8", "--model.depth=2"]


class TouchOnUnpickle:
    """A pickle payload: unpickling it creates ``marker`` (it would run any code the same way)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    main(["fit", *BASELINE, *DATA, f"--trainer.default_root_dir={root}",
          "--trainer.max_steps=2", "--trainer.limit_val_batches=1"])  # fmt: skip
    return root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture
def payload_url(tmp_path):
    """A pickle payload served on the loopback address; yields (url, marker)."""
    marker = tmp_path / "payload_ran"
    served = tmp_path / "served"
    served.mkdir()
    with open(served / "model.ckpt", "wb") as file:
        pickle.dump({"state_dict": TouchOnUnpickle(marker)}, file)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/model.ckpt", marker
    finally:
        server.shutdown()


def test_payload_runs_when_unpickled(tmp_path):
    """The payload is real: plain unpickling does run it."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(TouchOnUnpickle(marker)))
    assert marker.exists()


@pytest.mark.parametrize("command", ["test", "predict", "fit"])
def test_cli_refuses_checkpoint_urls(command, payload_url, tmp_path):
    url, marker = payload_url
    with pytest.raises(CheckpointConfigError, match="local files only"):
        main([command, *BASELINE, *DATA, f"--trainer.default_root_dir={tmp_path}",
              f"--ckpt_path={url}"])  # fmt: skip
    assert not marker.exists()


def test_load_from_checkpoint_reads_urls_weights_only(payload_url, tmp_path, monkeypatch):
    url, marker = payload_url
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(Exception, match=r"[Ww]eights only|weights_only"):
        Baseline.load_from_checkpoint(url)
    assert not marker.exists()
    with pytest.raises(ValueError, match="weights-only"):
        Baseline.load_from_checkpoint(url, weights_only=False)
    assert not marker.exists()


def test_cli_refuses_weights_only_false(trained, tmp_path):
    with pytest.raises(CheckpointConfigError, match="weights-only"):
        main(["test", *BASELINE, *DATA, f"--trainer.default_root_dir={tmp_path}",
              f"--ckpt_path={trained}", "--weights_only=false"])  # fmt: skip


def test_unregistered_class_path_is_not_imported(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "this.Zen"
    forged = tmp_path / "forged.ckpt"
    torch.save(checkpoint, forged)
    sys.modules.pop("this", None)
    with pytest.raises(CheckpointConfigError, match=r"'this\.Zen', which is not a registered"):
        main(["test", *BASELINE, *DATA, f"--trainer.default_root_dir={tmp_path}",
              f"--ckpt_path={forged}"])  # fmt: skip
    assert "this" not in sys.modules


def test_checkpoint_of_another_family_is_named(trained, tmp_path):
    with pytest.raises(CheckpointConfigError, match="holds a baseline model"):
        main(["test", "--model", "zim", "--model.variant=tiny", *DATA,
              f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={trained}"])  # fmt: skip


def test_evaluation_settings_follow_the_command_line(trained, tmp_path):
    main(["test", *BASELINE, *DATA, f"--trainer.default_root_dir={tmp_path}",
          f"--ckpt_path={trained}", "--model.metric_preset=zim"])  # fmt: skip
    table = (tmp_path / "lightning_logs" / "version_0" / "metrics_test.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| Baseline")]
    assert rows and all("| zim |" in row for row in rows)
    assert all(row.startswith("| Baseline | 0 | 2 |") for row in rows)  # the checkpoint's step


def test_network_settings_that_contradict_the_checkpoint_are_errors(trained, tmp_path):
    with pytest.raises(CheckpointConfigError, match=r"base_channels=16 \(the checkpoint has 8\)"):
        main(["test", "--model", "baseline", "--model.base_channels=16", "--model.depth=2", *DATA,
              f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={trained}"])  # fmt: skip


def test_network_settings_left_out_come_from_the_checkpoint(trained, tmp_path):
    """No --model.base_channels: the checkpoint's 8 is built, not the default 32."""
    main(["test", "--model", "baseline", *DATA, f"--trainer.default_root_dir={tmp_path}",
          f"--ckpt_path={trained}"])  # fmt: skip
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics_test.md").is_file()
