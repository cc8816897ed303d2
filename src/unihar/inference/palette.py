"""How people are drawn, shared by the annotated video (:mod:`unihar.inference.render`) and the web page
(:mod:`unihar.serving`): the colour of each person and the confidence a joint needs to be drawn.

Kept apart from the renderer so the server can tell the page these without importing the video encoder.
"""

from __future__ import annotations

__all__ = ["MIN_DRAW_CONFIDENCE", "person_colour"]

MIN_DRAW_CONFIDENCE = 0.3  # joints below this confidence are not drawn
# One colour per person id (cycled): distinct on both dark and bright scenes.
_PALETTE = (
    (255, 140, 0),
    (0, 170, 255),
    (80, 220, 80),
    (230, 60, 160),
    (250, 220, 40),
    (150, 100, 255),
    (0, 210, 190),
    (255, 90, 90),
)


def person_colour(person_id: int) -> tuple[int, int, int]:
    """The colour person ``person_id`` is drawn in, in the video and on the page."""
    return _PALETTE[person_id % len(_PALETTE)]
