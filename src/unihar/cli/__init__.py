"""The ``unihar`` command line: one typer app; each command lives in its own module.

Errors the user can cause (:class:`unihar.errors.UniHARError`) end as one line on stderr starting
``error:`` and exit code 2, never a traceback. Set ``UNIHAR_DEBUG=1`` to see the traceback anyway.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="unihar",
    help="Uni-HAR: human action recognition from video (pose transformer + RGB fusion).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    from unihar.cli import evaluate, export, labels, predict, serve, stream, teach, train

    for module in (predict, stream, train, teach, evaluate, labels, export, serve):
        module.register(app)
    _registered = True


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``unihar`` script."""
    from unihar.errors import UniHARError, one_line
    from unihar.memory import return_large_buffers_to_the_os

    return_large_buffers_to_the_os()  # peak memory on long, large videos independent of thread timing
    _register_commands()
    try:
        app(args=argv, standalone_mode=True)
    except UniHARError as err:
        if os.environ.get("UNIHAR_DEBUG"):
            raise
        typer.echo(f"error: {one_line(err)}", err=True)  # one line, whatever the message
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
