"""A training DataLoader whose place in the epoch is saved in checkpoints and restored.

Lightning saves ``state_dict()`` of a loader that has one with every checkpoint and hands it to
``load_state_dict`` before it iterates again on resume (:func:`load_skipped_loader_states` does
where Lightning does not). Together with draws that depend on
(run seed, epoch, position) only (:mod:`mattekit.data.draws`), a resumed epoch continues with
exactly the batches the interrupted one had not yet trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader

from mattekit.data.mixing import ScheduledDraws, WeightedSourceSampler

# () -> (epoch, batches of it trained on by each process, number of processes)
Progress = Callable[[], tuple[int, int, int]]


class ResumableLoader(DataLoader):
    """``DataLoader`` over an epoch's draws (:mod:`mattekit.data.mixing`) that resumes
    mid-epoch.

    Args:
        draws: the epoch's draws for all processes (``sampler`` is this process's share).
        progress: where training stands (see ``Progress``), read when a checkpoint is saved.
        *args, **kwargs: ``DataLoader``'s.
    """

    def __init__(
        self, *args, draws: WeightedSourceSampler | ScheduledDraws, progress: Progress, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.draws = draws
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, batches_done, processes = self.progress()
        return {"epoch": epoch, "batches_done": batches_done, "processes": processes}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Every process trained ``batches_done`` batches of its share: the draws before
        # ``position`` are done (a schedule's global batch is every process's batch together).
        position = state["batches_done"] * state["processes"] * self.batch_size
        epoch = state["epoch"]
        if position >= len(self.draws):
            epoch, position = epoch + 1, 0
        self.draws.resume(epoch, position)


def load_skipped_loader_states(trainer: L.Trainer) -> None:
    """Hand the checkpoint's loader states to the loaders when Lightning skipped it.

    ``trainer.estimated_stepping_batches`` (the LR schedule's length, read in
    ``configure_optimizers``) builds the training loader and its iterator when the run is bounded
    by ``max_epochs``, before the checkpoint is restored; Lightning then keeps that loader and
    never loads the saved states into it (Lightning issue #20550), so a mid-epoch resume would
    replay the epoch from its start. Called when training starts, this loads them and makes a
    new iterator, as Lightning's own path does; a no-op when Lightning has loaded them already.
    """
    fit_loop = trainer.fit_loop
    if not fit_loop._combined_loader_states_to_load:
        return
    fit_loop._load_combined_loader_states()
    if fit_loop._data_fetcher is not None:
        # The iterator made before the restore has already drawn from the epoch's start.
        iter(fit_loop._data_fetcher)
