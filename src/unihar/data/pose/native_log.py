"""Keeping the log lines native pose runtimes print on their own out of the command line's stderr.

LiteRT prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` the first time a model is
loaded in a process, and MediaPipe's graph logs while it starts; neither has a switch for it. Left
alone, those lines break the promise of one ``error:`` line on stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["native_stderr_silenced"]

_silence_lock = threading.Lock()
_silence_depth = 0
_saved_state: tuple[int, object] | None = None  # (real fd 2, Python's sys.stderr) while silenced


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes straight to file descriptor 2 to /dev/null, for a moment.

    Python's own ``sys.stderr`` (warnings, the CLI's progress bar) keeps writing to the real stderr
    meanwhile, but a logging handler that holds the old stream does not: use it only around the
    short calls that print (loading a model), never around a running stream. Re-entrant and
    thread-safe: the first caller in redirects, the last one out restores.
    """
    global _silence_depth, _saved_state
    with _silence_lock:
        if _silence_depth == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no real stderr (some notebooks): nothing to hide
                saved = None
            if saved is not None:
                python_stderr = sys.stderr
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
                encoding = getattr(python_stderr, "encoding", None) or "utf-8"
                sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=encoding)
                _saved_state = (saved, python_stderr)
        _silence_depth += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silence_depth -= 1
            if _silence_depth == 0 and _saved_state is not None:
                saved, python_stderr = _saved_state
                _saved_state = None
                redirected, sys.stderr = sys.stderr, python_stderr
                try:
                    redirected.flush()
                    redirected.close()
                finally:
                    os.dup2(saved, 2)
                    os.close(saved)
