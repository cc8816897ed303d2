"""Batch prediction on a Ray cluster: ``unihar predict FOLDER --out results.jsonl --ray auto``.

The same job as :func:`unihar.inference.batch.predict_videos` with local workers, as a Ray Data
pipeline that streams one video per row:

1. the file list, made on the driver (the videos must be at the same path on every node: a shared
   file system);
2. the **pose stage**: actors of one CPU each decode a video and find everyone in every frame
   (:func:`~unihar.inference.batch_stages.estimate_poses`);
3. the **model stage**: tracking, windows and the model (:class:`~unihar.inference.batch_stages.PoseClassifier`),
   on actors with one GPU each when the cluster has GPUs, else one CPU actor;
4. each row back on the driver, whose line is appended to the output file as it arrives, so a killed
   run resumes like a local one.

A model that also reads RGB frames runs in one stage (decode, poses and model on one actor, with a
GPU when there are any), so its frames never cross the network. Install with ``pip install 'unihar[ray]'``
on every node.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from unihar.errors import InputError
from unihar.inference.batch_stages import (
    BatchSettings,
    PoseClassifier,
    VideoOutcome,
    VideoPoses,
    estimate_poses,
    failure,
    predict_whole_video,
)
from unihar.models import HARModel

__all__ = ["ray_outcomes"]

MODEL_BATCH = 4  # videos per model-stage call
MAX_BLOCKS = 10_000  # the file list is cut into at most this many blocks (one video each for smaller jobs)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data needs pyarrow and pandas, which plain ``ray`` lacks)
    except ImportError as err:
        raise InputError(f"--ray needs Ray Data: pip install 'unihar[ray]' ({err})") from None
    return ray


class _PoseStage:
    """Ray actor: decode + pose estimation, one CPU thread (Ray gives each actor one CPU)."""

    def __init__(self, settings: BatchSettings) -> None:
        torch.set_num_threads(1)
        self.settings = settings
        self.pose = settings.pose(threads=1)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        source = str(row["source"])
        try:
            poses = estimate_poses(source, self.pose, self.settings.fps)
        except Exception as err:
            return {
                "source": source,
                "poses": b"",
                "line": json.dumps(failure(source, err)),
                "frames": 0,
                "seconds": 0.0,
            }
        return {
            "source": source,
            "poses": pickle.dumps(poses),
            "line": "",
            "frames": len(poses.people),
            "seconds": poses.seconds,
        }


class _ModelStage:
    """Ray actor: tracking, windows and the model for the poses the pose stage found."""

    def __init__(self, settings: BatchSettings) -> None:
        torch.set_num_threads(1)  # on a CPU it shares the cores with the pose actors (milliseconds per video)
        self.classifier = PoseClassifier(settings, settings.model())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lines, model_seconds = [], []
        for payload, line in zip(batch["poses"], batch["line"]):
            if line:  # the pose stage failed: its error line passes through
                lines.append(str(line))
                model_seconds.append(0.0)
                continue
            poses: VideoPoses = pickle.loads(payload)
            outcome = self.classifier(poses)
            lines.append(json.dumps(outcome.line))
            model_seconds.append(outcome.model_seconds)
        return {
            "line": np.array(lines, dtype=object),
            "frames": np.asarray(batch["frames"]),
            "worker_seconds": np.asarray(batch["seconds"], dtype=np.float64),
            "model_seconds": np.array(model_seconds, dtype=np.float64),
        }


class _WholeVideoStage:
    """Ray actor for models that read RGB frames too: the whole pipeline on one actor."""

    def __init__(self, settings: BatchSettings, threads: int) -> None:
        torch.set_num_threads(threads)
        self.settings = settings
        self.recognizer = settings.recognizer(settings.model(), settings.pose(threads=threads))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [predict_whole_video(str(source), self.recognizer, self.settings) for source in batch["source"]]
        return {
            "line": np.array([json.dumps(o.line) for o in outcomes], dtype=object),
            "frames": np.array([o.frames for o in outcomes], dtype=np.int64),
            "worker_seconds": np.array([o.worker_seconds for o in outcomes], dtype=np.float64),
            "model_seconds": np.zeros(len(outcomes), dtype=np.float64),
        }


def ray_outcomes(
    sources: Sequence[str], settings: BatchSettings, model: HARModel, address: str, workers: int = 0
) -> Iterator[VideoOutcome]:
    """The outcome of each video, as the cluster finishes them.

    ``address``: ``"local"`` starts a Ray instance on this machine (stopped afterwards), ``"auto"`` joins
    the cluster this machine belongs to, else a cluster address (``host:6379`` or ``ray://host:10001``).
    If Ray is already initialised in this process, that instance is used. ``workers``: pose actors
    (0: one per CPU of the cluster).
    """
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise InputError(
                f"--ray {address!r}: cannot connect to a Ray cluster ({str(err).splitlines()[0]})"
            ) from None
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # not "progress bars disabled" and the like
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = int(resources.get("GPU", 0))
        rows = ray.data.from_items([{"source": s} for s in sources], override_num_blocks=min(len(sources), MAX_BLOCKS))
        if model.has_image_branch:
            actors = min(max(1, gpus) if gpus else (workers or cpus), len(sources))
            threads = 1 if gpus else max(1, cpus // actors)
            lines = rows.map_batches(
                _WholeVideoStage,
                fn_constructor_kwargs={"settings": settings, "threads": threads},
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                num_gpus=1 if gpus else 0,
                num_cpus=threads,
            )
        else:
            # Pose actors: as many as asked for and the cluster can hold (an autoscaling cluster grows to them).
            # The model stage needs milliseconds per video: without GPUs it shares the CPUs of the pose stage.
            poses = rows.map(
                _PoseStage,
                fn_constructor_kwargs={"settings": settings},
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(workers or cpus, len(sources))),
                num_cpus=1,
            )
            lines = poses.map_batches(
                _ModelStage,
                fn_constructor_kwargs={"settings": settings},
                batch_size=MODEL_BATCH,
                compute=ray.data.ActorPoolStrategy(size=max(1, gpus)),
                num_gpus=1 if gpus else 0,
                num_cpus=1 if gpus else 0,
            )
        for row in lines.iter_rows():
            yield VideoOutcome(
                json.loads(row["line"]), int(row["frames"]), float(row["worker_seconds"]), float(row["model_seconds"])
            )
    finally:
        if started_here:
            ray.shutdown()
