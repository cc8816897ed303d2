"""Serving Uni-HAR over HTTP: a FastAPI app (``unihar serve``) with a JSON API and a web page.

Needs the ``serve`` extra: ``pip install 'unihar[serve]'`` (FastAPI, uvicorn, python-multipart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unihar.serving.service import PredictionService, ServeSettings

if TYPE_CHECKING:
    from unihar.serving.app import create_app

__all__ = ["create_app", "PredictionService", "ServeSettings"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the app is asked for, so ``ServeSettings`` works without it.
    if name == "create_app":
        from unihar.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'unihar.serving' has no attribute {name!r}")
