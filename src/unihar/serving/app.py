"""The Uni-HAR HTTP API and web page (FastAPI).

    from unihar import Recognizer
    from unihar.serving import create_app
    app = create_app(Recognizer())   # then: uvicorn.run(app); a VideoPipeline is accepted too

Endpoints:

* ``POST /v1/predict`` — a video as ``multipart/form-data`` (field ``file``), or one person's pose
  sequence as JSON (:class:`PoseRequest`). Answers the JSON ``unihar predict --json`` prints
  (``people``: everyone found, with their windows; ``topk`` / ``windows``: the main person's); with
  ``?poses=1`` it adds ``poses`` (each person's keypoints, id and colour, and the skeleton's bones).
* ``GET /v1/labels``, ``GET /healthz``, the OpenAPI docs at ``/docs``, the web page at ``/``.

Errors are JSON ``{"detail": ...}``: 413 for a body over the size limit (or a JSON body with more
keypoints than the server takes), 415 for a request or file that is not a video / JSON, 422 for input
the model cannot use (an undecodable video, nobody in view, a clip longer than the limit, malformed
keypoints, a bad ``topk``), 400 for a malformed body, 408 for a body that arrives too slowly, 503 with
``Retry-After`` when the waiting line of its kind of job is full.

Run it with :func:`unihar.serving.server.uvicorn_options` (as ``unihar serve`` does), so connections
that trickle a request's head are closed too.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unihar.errors import CheckpointError, ConfigError, HubError, UniHARError
from unihar.inference.pipeline import VideoPipeline
from unihar.recognizer import Recognizer
from unihar.serving.service import (
    DEFAULT_KEYPOINTS_FPS,
    PredictionService,
    ServerBusy,
    ServeSettings,
    TooManyKeypointsError,
)
from unihar.serving.uploads import BodyPace, check_keypoint_count, receive_bytes, receive_video

__all__ = ["create_app", "PoseRequest"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
logger = logging.getLogger("unihar.serving")


# ---------------------------------------------------------------------------------------------- schemas
class PoseRequest(BaseModel):
    """A pose sequence to classify: one person's 2D keypoints, frame by frame, in pixels (answered as person 0)."""

    model_config = ConfigDict(extra="forbid")

    keypoints: list[list[list[float]]] = Field(
        description="(frames, joints, 3): [x, y, confidence] per joint, x/y in pixels, confidence in [0, 1] "
        "(0 = joint missing). [x, y] pairs get confidence 1."
    )
    layout: str | list[str] | None = Field(
        None,
        description="Joint order: coco17, body25, coco18, mediapipe33, penn13, or a list of joint names. "
        "Default: guessed from the number of joints.",
        examples=["coco17"],
    )
    fps: float = Field(DEFAULT_KEYPOINTS_FPS, gt=0, le=1000, description="Frame rate of the sequence (default 30).")
    width: int | None = Field(
        None, gt=0, le=100_000, description="Frame width in pixels (default: the keypoints' extent)."
    )
    height: int | None = Field(
        None, gt=0, le=100_000, description="Frame height in pixels (default: the keypoints' extent)."
    )


class Score(BaseModel):
    id: int
    label: str
    prob: float


class Window(BaseModel):
    start_frame: int = Field(description="First frame of the window.")
    end_frame: int = Field(description="One past its last frame.")
    topk: list[Score]


class Person(BaseModel):
    id: int = Field(description="Track id: the same person keeps it across the video.")
    start_frame: int = Field(description="First frame the person was seen.")
    end_frame: int = Field(description="Last frame the person was seen (inclusive).")
    topk: list[Score] | None = Field(None, description="The person's top-k: the mean of their window probabilities.")
    windows: list[Window] | None = None
    reason: str | None = Field(None, description="Why the person has no top-k (seen too briefly).")


class PersonPoses(BaseModel):
    id: int
    colour: str = Field(description="#rrggbb, the colour the annotated video draws this person in.")
    start_frame: int = Field(description="The frame of keypoints[0].")
    keypoints: list[list[list[float]]] = Field(
        description="(frames, joints, 3): [x, y, confidence], one per frame of the track."
    )
    detected: list[bool] = Field(description="Per frame: False where the person was not found (the pose is filled in).")


class Poses(BaseModel):
    layout: str
    joints: list[str]
    edges: list[list[int]] = Field(description="Bones as pairs of joint indices.")
    frame_size: list[int] = Field(description="[width, height] the pixel coordinates refer to.")
    min_confidence: float = Field(description="Joints below this confidence are not drawn.")
    main_person: int = Field(description="The id of the person the top-level topk / windows describe.")
    people: list[PersonPoses]


class Prediction(BaseModel):
    source: str
    frames: int
    fps: float
    topk: list[Score] = Field(description="The main person's (largest size x duration) top-k over the whole clip.")
    windows: list[Window] = Field(description="The main person's windows.")
    people: list[Person] = Field(description="Everyone tracked, by id.")
    poses: Poses | None = Field(None, description="Only with ?poses=1.")


class ErrorMessage(BaseModel):
    detail: str


_VIDEO_BODY = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The video (mp4, webm, avi, mkv, mov, ...)."}
    },
    "required": ["file"],
}
_PREDICT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _VIDEO_BODY},
            "application/json": {"schema": PoseRequest.model_json_schema()},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorMessage} for status in (400, 408, 413, 415, 422, 503)
}


# ---------------------------------------------------------------------------------------------- errors
def _status_for(error: UniHARError) -> int:
    if isinstance(error, TooManyKeypointsError):
        return 413
    # Problems of the server's own model or environment are not the client's fault.
    return 500 if isinstance(error, (ConfigError, CheckpointError, HubError)) else 422


async def _uniharerror_handler(request: Request, error: UniHARError) -> JSONResponse:
    status = _status_for(error)
    message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, message)
    return JSONResponse({"detail": message, "error": type(error).__name__}, status_code=status)


async def _busy_handler(request: Request, error: ServerBusy) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": str(error.retry_after)})


# ---------------------------------------------------------------------------------------------- app
def create_app(recognizer: Recognizer | VideoPipeline, settings: ServeSettings | None = None) -> FastAPI:
    """The API + web page around one loaded model (shared by all requests)."""
    from unihar import __version__

    service = PredictionService(recognizer, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="Uni-HAR",
        version=__version__,
        description="Human action recognition from video: upload a clip (or a pose sequence), get the actions.",
        lifespan=lifespan,
    )
    app.state.service = service
    # Starlette's stubs want handlers of any Exception; each is only ever called with the class it is registered for.
    app.add_exception_handler(UniHARError, _uniharerror_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ServerBusy, _busy_handler)  # type: ignore[arg-type]

    @app.post(
        "/v1/predict",
        response_model=Prediction,
        response_model_exclude_none=True,
        responses=_ERRORS,
        openapi_extra=_PREDICT_OPENAPI,
        summary="Recognise the actions in a video or a pose sequence",
    )
    async def predict(
        request: Request,
        topk: int = Query(5, description="How many actions to list (1 to the number of classes)."),
        poses: bool = Query(
            False,
            description="Also return each person's keypoints (with their id and colour) and the skeleton's bones.",
        ),
    ) -> Response:
        """Upload a video (``multipart/form-data``, field ``file``) or send keypoints as JSON.

        The answer is the JSON ``unihar predict --json`` prints; ``?poses=1`` adds ``poses``.
        """
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        settings = service.settings
        # Everything that can be refused is refused before the body is read.
        if content_type not in ("multipart/form-data", "application/json"):
            return JSONResponse(
                {
                    "detail": "expected a video as multipart/form-data (field 'file') or keypoints as "
                    "application/json, "
                    f"got Content-Type {content_type or 'none'!r}"
                },
                status_code=415,
            )
        service.pipeline.check_topk(topk)
        pace = BodyPace(settings.body_timeout, settings.min_upload_rate)
        if content_type == "multipart/form-data":
            with service.videos.place() as place:
                async with receive_video(request, settings.max_upload_bytes, settings.upload_dir, pace) as upload:
                    answer = await service.videos.run(
                        place, _encoded, service.predict_video, upload.path, upload.filename, topk, poses
                    )
        else:
            with service.keypoints.place() as place:
                body = await receive_bytes(request, settings.max_json_bytes, pace)
                answer = await service.keypoints.run(place, _encoded, _predict_json, service, body, topk, poses)
        # Returned as-is (not through the response model), so the default answer is the same object
        # as ``unihar predict --json``.
        return Response(answer, media_type="application/json")

    @app.get("/v1/labels", summary="The actions the model knows")
    async def labels() -> dict[str, Any]:
        names = service.labels
        return {"num_classes": len(names), "labels": [{"id": i, "label": name} for i, name in enumerate(names)]}

    @app.get("/healthz", summary="Liveness check")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "num_classes": len(service.labels)}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _encoded(job: Callable[..., dict[str, Any]], *args: Any) -> bytes:
    """Run ``job`` and encode its answer as JSON, both on the worker thread (a long video's poses are megabytes)."""
    return json.dumps(job(*args), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _predict_json(service: PredictionService, body: bytes, topk: int, with_poses: bool) -> dict[str, Any]:
    """Check the raw size of a JSON pose request, then parse and classify it (on a worker thread)."""
    check_keypoint_count(body, service.settings.max_keypoints, service.settings.max_frames)
    try:
        request = PoseRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
    return service.predict_keypoints(
        request.keypoints,
        layout=request.layout,
        fps=request.fps,
        width=request.width,
        height=request.height,
        topk=topk,
        with_poses=with_poses,
    )
