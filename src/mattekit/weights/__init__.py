"""Safe loading of checkpoints from local files (no model hub is assumed reachable)."""

from mattekit.weights.files import load_state_dict
from mattekit.weights.sam import LoadReport, load_sam_checkpoint

__all__ = ["LoadReport", "load_sam_checkpoint", "load_state_dict"]
