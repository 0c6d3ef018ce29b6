"""The demo's per-browser-session state: each page keeps its own photo, features and download.

One checkpoint serves every page (its weights are read-only), but what belongs to a photo (the
photo, its cached image features, the cut-out written for download) is kept per session, keyed
by Gradio's session hash. A photo's encoding holds memory, so the store is bounded: at most
``max_sessions`` live sessions (the least recently used is dropped first) and none idle longer
than ``idle_seconds``. A dropped page is asked to upload its photo again.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.interactive import InteractiveSession

DEFAULT_MAX_SESSIONS = 16
DEFAULT_IDLE_SECONDS = 30 * 60.0


@dataclass
class DemoSession:
    """One page's state: its photo and features (``interactive``), and its download folder."""

    interactive: InteractiveSession
    folder: Path
    last_used: float


class SessionStore:
    """Per-session state, least recently used first out, idle sessions expired.

    Args:
        runner: the checkpoint every session predicts with.
        folder: where each session's download folder is made.
        max_sessions: live sessions kept at most.
        idle_seconds: a session unused this long is dropped.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        runner: CheckpointModel,
        folder: Path,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.runner, self.folder = runner, Path(folder)
        self.max_sessions, self.idle_seconds, self.clock = max_sessions, idle_seconds, clock
        self._sessions: OrderedDict[str, DemoSession] = OrderedDict()
        self._lock = threading.Lock()  # Gradio runs callbacks in threads
        # The model is shared and stateful (``evaluate_with`` sets its prompt kind), so one
        # session's encode or predict must not interleave with another's.
        self.model_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, key: str) -> bool:
        return key in self._sessions

    def sessions(self) -> list[DemoSession]:
        """The live sessions, least recently used first."""
        with self._lock:
            return list(self._sessions.values())

    def get(self, key: str) -> DemoSession | None:
        """``key``'s session (now the most recently used), or None if it never was or was
        dropped."""
        with self._lock:
            self._expire()
            session = self._sessions.get(key)
            if session is not None:
                session.last_used = self.clock()
                self._sessions.move_to_end(key)
            return session

    def open(self, key: str) -> DemoSession:
        """``key``'s session, made if needed (dropping the least recently used one when full)."""
        session = self.get(key)
        if session is not None:
            return session
        with self._lock:
            while len(self._sessions) >= self.max_sessions:
                self._remove(next(iter(self._sessions)))
            self.folder.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="session_", dir=self.folder))
            session = DemoSession(InteractiveSession(self.runner), folder, self.clock())
            self._sessions[key] = session
            return session

    def drop(self, key: str) -> None:
        """Forget ``key``'s session and delete its downloads (the page was closed)."""
        with self._lock:
            self._remove(key)

    def _expire(self) -> None:
        deadline = self.clock() - self.idle_seconds
        for key in [k for k, s in self._sessions.items() if s.last_used < deadline]:
            self._remove(key)

    def _remove(self, key: str) -> None:
        session = self._sessions.pop(key, None)
        if session is not None:
            shutil.rmtree(session.folder, ignore_errors=True)
