"""The Uni-HAR HTTP API and web page (FastAPI).

    from unihar.inference.pipeline import VideoPipeline
    from unihar.serving import create_app
    app = create_app(VideoPipeline.from_pretrained("path/to/model"))   # then: uvicorn.run(app)

Endpoints:

* ``POST /v1/predict`` — a video as ``multipart/form-data`` (field ``file``), or a pose sequence as
  JSON (:class:`PoseRequest`). Answers the JSON ``unihar predict --json`` prints; with ``?poses=1``
  it adds ``poses`` (per-frame keypoints and the skeleton's bones, for drawing).
* ``GET /v1/labels``, ``GET /healthz``, the OpenAPI docs at ``/docs``, the web page at ``/``.

Errors are JSON ``{"detail": ...}``: 413 for a body over the size limit, 415 for a request or file
that is not a video / JSON, 422 for input the model cannot use (an undecodable video, nobody in view,
a clip longer than the limit, malformed keypoints, a bad ``topk``), 400 for a malformed body.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unihar.errors import CheckpointError, ConfigError, HubError, UniHARError
from unihar.inference.pipeline import VideoPipeline
from unihar.serving.service import DEFAULT_KEYPOINTS_FPS, PredictionService, ServeSettings
from unihar.serving.uploads import receive_bytes, receive_video

__all__ = ["create_app", "PoseRequest"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
logger = logging.getLogger("unihar.serving")


# ---------------------------------------------------------------------------------------------- schemas
class PoseRequest(BaseModel):
    """A pose sequence to classify: one person's 2D keypoints, frame by frame, in pixels."""

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
    width: int | None = Field(None, gt=0, le=100_000, description="Frame width in pixels (default: the keypoints' extent).")
    height: int | None = Field(None, gt=0, le=100_000, description="Frame height in pixels (default: the keypoints' extent).")


class Score(BaseModel):
    id: int
    label: str
    prob: float


class Window(BaseModel):
    start_frame: int = Field(description="First frame of the window.")
    end_frame: int = Field(description="One past its last frame.")
    topk: list[Score]


class Poses(BaseModel):
    layout: str
    joints: list[str]
    edges: list[list[int]] = Field(description="Bones as pairs of joint indices.")
    frame_size: list[int] = Field(description="[width, height] the pixel coordinates refer to.")
    min_confidence: float = Field(description="Joints below this confidence are not drawn.")
    keypoints: list[list[list[float]]] = Field(description="(frames, joints, 3): [x, y, confidence].")
    detected: list[bool] = Field(description="Per frame: False where nobody was detected (the pose is filled in).")


class Prediction(BaseModel):
    source: str
    frames: int
    fps: float
    topk: list[Score] = Field(description="Whole-clip top-k: the mean of the window probabilities.")
    windows: list[Window]
    poses: Poses | None = Field(None, description="Only with ?poses=1.")


class ErrorMessage(BaseModel):
    detail: str


_VIDEO_BODY = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary", "description": "The video (mp4, webm, avi, mkv, mov, ...)."}},
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
_ERRORS = {status: {"model": ErrorMessage} for status in (400, 413, 415, 422)}


# ---------------------------------------------------------------------------------------------- errors
def _status_for(error: UniHARError) -> int:
    # Problems of the server's own model or environment are not the client's fault.
    return 500 if isinstance(error, (ConfigError, CheckpointError, HubError)) else 422


async def _uniharerror_handler(request: Request, error: UniHARError) -> JSONResponse:
    status = _status_for(error)
    message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, message)
    return JSONResponse({"detail": message, "error": type(error).__name__}, status_code=status)


# ---------------------------------------------------------------------------------------------- app
def create_app(pipeline: VideoPipeline, settings: ServeSettings | None = None) -> FastAPI:
    """The API + web page around one loaded model (shared by all requests)."""
    from unihar import __version__

    service = PredictionService(pipeline, settings)

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
    app.add_exception_handler(UniHARError, _uniharerror_handler)

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
        poses: bool = Query(False, description="Also return the per-frame keypoints and the skeleton's bones."),
    ) -> JSONResponse:
        """Upload a video (``multipart/form-data``, field ``file``) or send keypoints as JSON.

        The answer is the JSON ``unihar predict --json`` prints; ``?poses=1`` adds ``poses``.
        """
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        limit = service.settings.max_upload_bytes
        if content_type == "multipart/form-data":
            async with receive_video(request, limit, service.settings.upload_dir) as upload:
                result = await service.run_video(upload.path, upload.filename, topk, poses)
        elif content_type == "application/json":
            body = await receive_bytes(request, limit)
            result = await service.run(_predict_json, service, body, topk, poses)
        else:
            return JSONResponse(
                {"detail": "expected a video as multipart/form-data (field 'file') or keypoints as application/json, "
                 f"got Content-Type {content_type or 'none'!r}"},
                status_code=415,
            )
        # Returned as-is (not through the response model), so the default answer is byte for byte
        # the same object as ``unihar predict --json``.
        return JSONResponse(result)

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


def _predict_json(service: PredictionService, body: bytes, topk: int, with_poses: bool) -> dict[str, Any]:
    """Validate a JSON pose request (on a worker thread: big bodies take a while) and classify it."""
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
