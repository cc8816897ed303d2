"""Exceptions Uni-HAR raises for bad input.

Every error a user can cause derives from :class:`UniHARError`, so the CLI and the server can turn
them into one clear message (and exit code 2, or a 4xx) instead of a traceback. The concrete classes
also derive from the built-in a caller would expect (``ValueError``, ``FileNotFoundError``...).
"""

from __future__ import annotations


class UniHARError(Exception):
    """Base class of the errors caused by the user's input, files or environment."""


class InputError(UniHARError, ValueError):
    """A tensor or array with the wrong shape, dtype or values."""


class ConfigError(UniHARError, ValueError):
    """A model config that is missing a key or holds an invalid value."""


class CheckpointError(UniHARError, ValueError):
    """A checkpoint that cannot be read or does not match its config."""


class HubError(UniHARError, OSError):
    """A file that could not be fetched from (or found in the cache of) the Hugging Face Hub."""


class VideoError(UniHARError, ValueError):
    """A video that is missing, unreadable, corrupt or empty."""


class NoPersonError(UniHARError, ValueError):
    """No person was detected in any frame."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (multi-line details joined with "; "): what the CLI prints
    after ``error:`` and what a batch run records for a video that failed."""
    message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return message or type(err).__name__
