"""``PromptKind``: everything mattekit knows about one kind of prompt, in one place.

A kind says which batch fields carry it (they are also the inputs of an exported graph), which
fields of a stored sample hold it (what the benchmark stores and a data source may ship), how a
user gives it (a ``matte`` flag, a key of the prompt json, a demo widget), how a picture draws or
blanks it, and the floor row of a metric table evaluated with it. The kinds themselves are in
:mod:`mattekit.prompts.kinds`; families declare which ones they accept.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptKind:
    """One prompt kind.

    Attributes:
        name: the kind's name (``--model.eval_prompt``, ``--kind``, ``prompt_kinds`` entries).
        batch_fields: the :class:`~mattekit.data.sample.MattingBatch` fields a family reads for
            this kind; an exported whole-model graph takes them as inputs.
        raw_fields: the :class:`~mattekit.data.sample.RawSample` fields that hold it as a
            source ships it (a benchmark's stored prompts, a user's prompt file).
        map_field: the batch field holding the kind as a B x 1 x H x W map at the network input,
            where it has one (the spatial families' prompt channels).
        flag: the ``mattekit matte`` option that gives it (None: cannot be given).
        json_key: its key in a prompt json beside a photo (MicroMat-3K's ``point`` / ``bbox``).
        widget: what the demo shows for it (``clicks``, ``box``, ``upload``, ``textbox``).
        drawn_fields: the fields :func:`~mattekit.visualize.logged_samples` keeps for a picture
            only when this kind was the one given (the others are blanked).
        floor_field: the region a metric table's floor row takes as its alpha: a prompt field
            (``box``, ``coarse_mask``, ``trimap``) of the batch (as its map) or of the
            benchmark's stored prompt; None: no floor row (``none``).
        description: one line for ``mattekit models`` and the docs.
    """

    name: str
    batch_fields: tuple[str, ...]
    raw_fields: tuple[str, ...]
    map_field: str | None
    flag: str | None
    json_key: str | None
    widget: str | None
    drawn_fields: tuple[str, ...]
    floor_field: str | None
    description: str = ""
