"""Many videos at once: ``unihar predict FOLDER --out results.jsonl``.

    summary = predict_videos(find_videos(["archive/"]), "results.jsonl", BatchSettings(topk=5), workers=4)

Every video gets one JSON line in the output file: the object ``unihar predict VIDEO --json`` prints,
or ``{"source", "error"}`` with the message that command would print. Lines are appended, flushed and
synced as each video finishes, so a run that is killed loses only the videos in flight, and a second
run with the same file skips the videos already answered (failed ones are tried again; the line of a
later success then follows the error line, so the last line of a source is its current one). The same
unexpected error (not the video's fault) on several videos stops the run: it is the setup's.

Where the work happens:

* ``workers=0``: this process runs :class:`VideoPipeline` on each video in turn, exactly ``unihar predict``.
* ``workers=N``, a pose-only model: N spawned processes decode and estimate poses (:func:`estimate_poses`,
  the expensive part), and this process tracks and classifies them (:class:`PoseClassifier`) with the
  same tracker and windowing engine, so the numbers are those of ``unihar predict``. A worker that dies
  (out of memory, a native crash) costs only the video it was on (:class:`_WorkerPool`).
* ``workers=N``, a model that also reads RGB frames: each process runs the whole pipeline (its frames
  never leave it).
* a Ray cluster: :mod:`unihar.inference.batch_ray`, with the same stages (:mod:`unihar.inference.batch_stages`)
  and the same output file.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_any
from pathlib import Path
from typing import Any

import torch

from unihar.data.video import GLOB_CHARACTERS, VIDEO_EXTENSIONS, is_video_file, natural_sort_key
from unihar.errors import InputError, UniHARError, one_line
from unihar.inference.batch_stages import (
    UNEXPECTED,
    BatchSettings,
    PoseClassifier,
    VideoOutcome,
    VideoPoses,
    estimate_poses,
    failure,
    predict_whole_video,
)
from unihar.memory import return_large_buffers_to_the_os
from unihar.models import HARModel

try:  # POSIX: two runs must not append to the same file at once
    import fcntl

    _HAVE_FCNTL = True
except ImportError:  # Windows: no lock
    _HAVE_FCNTL = False

__all__ = [
    "BatchSettings",
    "BatchSummary",
    "PoseClassifier",
    "ResultsFile",
    "VideoOutcome",
    "VideoPoses",
    "estimate_poses",
    "find_videos",
    "predict_videos",
    "predict_whole_video",
]

LINE_START = (
    b'{"source": '  # how every line of the output file starts (json.dumps of a dict whose first key is "source")
)
WORKER_DIED = "the worker process died"
MAX_REPEATED_ERRORS = 5
PER_WORKER = 2  # videos sent ahead to each worker: it never waits for the next, and memory stays bounded


# ---------------------------------------------------------------------- which videos


def find_videos(specs: Iterable[str | Path]) -> list[Path]:
    """The videos named by ``specs``: files as given, folders searched recursively, glob patterns
    (``**`` included) expanded. Folder and pattern matches keep the extensions the reader supports
    (:data:`~unihar.data.video.VIDEO_EXTENSIONS`) and skip hidden files; duplicates are dropped."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            videos = _videos_in(path)
            if not videos:
                raise InputError(
                    f"no videos in folder {str(spec)!r}: looked recursively for files ending in "
                    f"{', '.join(VIDEO_EXTENSIONS)}"
                )
            found += videos
        elif GLOB_CHARACTERS & set(str(spec)):
            matches = [Path(m) for m in glob.glob(str(spec), recursive=True)]
            videos = sorted(
                (v for m in matches for v in ([m] if m.is_file() else _videos_in(m)) if is_video_file(v)), key=_order
            )
            if not videos:
                raise InputError(
                    f"no videos match {str(spec)!r} (expected files ending in {', '.join(VIDEO_EXTENSIONS)})"
                )
            found += videos
        else:
            raise InputError(f"video not found: {str(spec)!r} does not exist")
    seen: set[str] = set()
    unique = []
    for video in found:
        if _key(video) not in seen:
            seen.add(_key(video))
            unique.append(video)
    return unique


def _order(path: Path) -> list[list[int | str]]:
    """Natural order of whole paths: ``clip2.mp4`` before ``clip10.mp4``, folder by folder."""
    return [natural_sort_key(Path(part)) for part in path.parts]


def _videos_in(folder: Path) -> list[Path]:
    """Videos under ``folder``, hidden folders skipped and symlinked folders not followed (no loops)."""
    videos: list[Path] = []
    for root, folders, files in os.walk(folder):
        folders[:] = [d for d in folders if not d.startswith(".")]
        videos += [Path(root) / f for f in files if is_video_file(Path(f))]
    return sorted(videos, key=_order)


def _key(source: str | Path) -> str:
    """How a source is recognised in the output file: its absolute path, so ``./a.mp4`` is ``a.mp4``."""
    return os.path.normpath(os.path.abspath(str(source)))


# ---------------------------------------------------------------------- the output file


class ResultsFile:
    """The JSON-lines output of a batch run, opened for appending (a context manager).

    Opening it checks that an existing file is one of ours (every complete line a JSON object with a
    ``"source"``), drops a torn last line (no newline: a run was killed while writing it) and locks it,
    so two runs cannot write to it at once. :meth:`write` appends one line, then flushes and syncs it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"--out {str(path)!r} is a folder; expected a file for the JSON lines, e.g. results.jsonl")
        self.answered: set[str] = set()  # keys of the sources with a prediction
        self.failed: dict[str, str] = {}  # key -> error of the sources whose last line is an error
        self.dropped_tail = b""  # the torn last line that was removed, if any
        self._fd: int | None = None

    def __enter__(self) -> ResultsFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise InputError(f"cannot open --out {str(self.path)!r}: {err.strerror}") from None
        try:
            self._lock(fd)
            self._read_existing(fd)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the lock
            self._fd = None

    def _lock(self, fd: int) -> None:
        if not _HAVE_FCNTL:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{str(self.path)!r} is being written by another `unihar predict` run; "
                "wait for it or pick another --out"
            ) from None

    def _read_existing(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        content = os.pread(fd, size, 0) if size else b""
        complete, newline, tail = content.rpartition(b"\n")
        lines = [_parse_line(raw) for raw in complete.split(b"\n")] if newline else []
        for number, line in enumerate(lines, start=1):
            if line is None:
                raise InputError(
                    f"--out {str(self.path)!r} is not the output of a batch run: line {number} is not a JSON object "
                    'with a "source"; pick a new file (results are only ever appended, never written over another file)'
                )
            if line:
                self._remember(line)
        if tail:  # no newline at the end: a run was killed while writing its last line?
            last = _parse_line(tail)
            if last:  # the line is whole, only its newline is missing
                os.write(fd, b"\n")
                self._remember(last)
            elif tail.startswith(LINE_START):  # the start of one of our lines: cut it off, nothing else
                self.dropped_tail = tail
                os.ftruncate(fd, len(complete) + len(newline))
            else:
                raise InputError(
                    f"--out {str(self.path)!r} is not the output of a batch run: its last line is not a JSON object "
                    'with a "source"; pick a new file (results are only ever appended, never written over another file)'
                )

    def _remember(self, line: dict[str, Any]) -> None:
        key = _key(line["source"])
        if "error" in line:
            if key not in self.answered:
                self.failed[key] = str(line["error"])
        else:
            self.answered.add(key)
            self.failed.pop(key, None)

    def is_answered(self, source: str | Path) -> bool:
        return _key(source) in self.answered

    def write(self, line: dict[str, Any]) -> None:
        """Append ``line`` as one JSON line; on disk when this returns."""
        if self._fd is None:
            raise InputError("the results file is not open (use it as a context manager)")
        data = (json.dumps(line) + "\n").encode()
        try:
            while data:  # os.write may write less than asked
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as err:  # a full disk, a lost network share: stop; the next run repairs and resumes
            raise UniHARError(f"cannot write to --out {str(self.path)!r}: {err.strerror}") from None
        self._remember(line)


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """A line of the output file: its object, ``{}`` for a blank line, None for anything else."""
    if not raw.strip():
        return {}
    try:
        line = json.loads(raw)
    except ValueError:  # bad JSON, and bytes that are not UTF-8
        return None
    return line if isinstance(line, dict) and isinstance(line.get("source"), str) else None


def _unexpected_error(line: dict[str, Any]) -> str | None:
    """The error of a line that is not the video's fault (see :func:`failure`, :class:`_WorkerPool`),
    with the video's path taken out, so the same fault on two videos gives the same text; else None."""
    error = line.get("error")
    if not isinstance(error, str) or not error.startswith((UNEXPECTED, WORKER_DIED)):
        return None
    source = str(line.get("source", ""))
    for name in sorted({_key(source), source} - {""}, key=len, reverse=True):
        error = error.replace(name, "VIDEO")
    return error


# ---------------------------------------------------------------------- worker processes

_worker_state: dict[str, Any] = {}


def _start_worker(settings: BatchSettings, threads: int, parent: int, whole_videos: bool) -> None:
    """Runs once in each spawned worker: threads capped so N workers share the cores, and the pose
    backend (or, for image models, the whole pipeline) built once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    return_large_buffers_to_the_os()
    torch.set_num_threads(threads)
    pose = settings.pose(threads)
    _worker_state["settings"] = settings
    _worker_state["pose"] = pose
    if whole_videos:
        _worker_state["recognizer"] = settings.recognizer(settings.model(), pose)
    # A worker whose parent was killed would otherwise wait for work forever.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_poses(source: str) -> VideoPoses | dict[str, Any]:
    settings = _worker_state["settings"]
    try:
        return estimate_poses(source, _worker_state["pose"], settings.fps)
    except Exception as err:
        return failure(source, err)


def _worker_whole_video(source: str) -> VideoOutcome:
    return predict_whole_video(source, _worker_state["recognizer"], _worker_state["settings"])


def _worker_main(conn: Any, settings: BatchSettings, threads: int, parent: int, whole_videos: bool) -> None:
    """A worker process: builds its stage, says ``ready``, then answers each video its pipe brings, in
    order, until the pipe closes. An exception that escapes (``UNIHAR_DEBUG=1``) goes back to be raised."""
    try:
        _start_worker(settings, threads, parent, whole_videos)
    except BaseException as err:  # noqa: BLE001 (anything: it is reported by the parent)
        message = one_line(err) if isinstance(err, UniHARError) else f"{type(err).__name__}: {one_line(err)}"
        conn.send(("failed", message))
        return
    conn.send(("ready", None))
    task = _worker_whole_video if whole_videos else _worker_poses
    while True:
        try:
            source = conn.recv()
        except (EOFError, OSError):  # the parent is done (or gone)
            return
        try:
            conn.send(("done", task(source)))
        except Exception as err:
            try:
                conn.send(("raised", err))
            except Exception:  # an exception that cannot be pickled: its traceback as text
                conn.send(("raised", RuntimeError("".join(traceback.format_exception(err)))))


@dataclass
class _Worker:
    """A worker process, the parent's end of its pipe, and the videos sent to it (the first is the one it is on)."""

    process: Any
    conn: Any
    videos: deque[str] = field(default_factory=deque)
    ready: bool = False


class _WorkerPool:
    """Spawned worker processes, each fed through a pipe of its own, so that when one dies (out of memory,
    a segfault in a native library) the video it was on is known: that video gets an error line, the
    videos queued behind it go to the others, and a fresh worker takes its place.
    (``concurrent.futures`` cannot say which video killed a worker, and stops every other one with it.)"""

    def __init__(self, size: int, settings: BatchSettings, threads: int, whole_videos: bool) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.args = (settings, threads, os.getpid(), whole_videos)
        self.workers: list[_Worker] = []
        self.requeue: list[str] = []  # videos of a worker that died, queued behind the one it was on
        for _ in range(size):
            self.start()

    def start(self) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(theirs, *self.args), name="unihar-batch-worker")
        process.start()
        theirs.close()  # the child's end lives in the child: a dead child is an end of file here
        self.workers.append(_Worker(process, ours))

    @property
    def busy(self) -> bool:
        return any(worker.videos for worker in self.workers)

    def feed(self, waiting: deque[str]) -> None:
        """Send waiting videos to the workers with room for them, least loaded first."""
        while waiting:
            worker = min(self.workers, key=lambda w: len(w.videos), default=None)
            if worker is None or len(worker.videos) >= PER_WORKER:
                return
            source = waiting.popleft()
            worker.videos.append(source)
            try:
                worker.conn.send(source)
            except OSError:  # it has just died: noticed, and the video passed on, by receive()
                pass

    def receive(self) -> Iterator[tuple[str, Any]]:
        """(video, what its worker sent back) for every answer that is in; a worker that died yields its
        video with the :data:`WORKER_DIED` error line, and hands the ones queued behind it back through
        ``requeue`` (oldest first)."""
        self.requeue = []
        ready = wait_for_any([w.conn for w in self.workers] + [w.process.sentinel for w in self.workers])
        for worker in list(self.workers):
            if worker.conn not in ready and worker.process.sentinel not in ready:
                continue
            dead = False
            while not dead and worker.conn.poll():
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError):
                    dead = True
                    break
                if kind == "ready":
                    worker.ready = True
                elif kind == "failed":
                    raise UniHARError(f"a worker process could not start: {payload}")
                elif kind == "raised":
                    raise payload
                else:
                    yield worker.videos.popleft(), payload
            if dead or not worker.process.is_alive():
                yield from self._bury(worker)

    def _bury(self, worker: _Worker) -> Iterator[tuple[str, Any]]:
        worker.process.join(timeout=10)
        if worker.process.is_alive():  # its pipe closed but it hangs on: it is of no use any more
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        self.workers.remove(worker)
        code = worker.process.exitcode
        if code is None or code >= 0:
            how = f"exit code {code}" if code is not None else "no exit code"
        else:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        if not worker.ready:
            raise UniHARError(
                f"a worker process died while starting ({how}); from a script: is the call under "
                '`if __name__ == "__main__":`? (spawned workers import the script again)'
            )
        if worker.videos:
            source = worker.videos.popleft()
            self.requeue.extend(worker.videos)
            error = f"{WORKER_DIED} while predicting this video ({how}: out of memory? a crash in a native library?)"
            yield source, {"source": source, "error": error}

    def stop(self, now: bool) -> None:
        """End the workers: ``now`` kills them mid-video; else they finish their video and exit."""
        for worker in self.workers:
            if now:
                worker.process.terminate()
            worker.conn.close()  # an end of file for a worker waiting for work: it exits
        deadline = time.monotonic() + 10
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self.workers.clear()


def _local_outcomes(
    sources: Sequence[str], settings: BatchSettings, model: HARModel, workers: int
) -> Iterator[VideoOutcome]:
    """The outcome of each video, in the order they finish."""
    if workers == 0:
        recognizer = settings.recognizer(model, settings.pose())
        for source in sources:
            yield predict_whole_video(source, recognizer, settings)
        return
    whole_videos = model.has_image_branch
    classifier = None if whole_videos else PoseClassifier(settings, model)
    threads = max(1, (os.cpu_count() or 1) // workers)
    torch_threads = torch.get_num_threads()
    # The workers have the cores; the model stage needs milliseconds per video, and several threads
    # spinning against busy workers make it many times slower.
    torch.set_num_threads(1)
    waiting = deque(sources)
    pool = _WorkerPool(min(workers, len(sources)), settings, threads, whole_videos)
    finished = False
    try:
        pool.feed(waiting)
        while pool.busy:
            for _source, result in pool.receive():
                if isinstance(result, VideoPoses):
                    assert classifier is not None  # poses come back only when the workers do not classify
                    yield classifier(result)
                elif isinstance(result, VideoOutcome):
                    yield result
                else:  # the pose stage failed, or the worker died: the error line
                    yield VideoOutcome(result)
            waiting.extendleft(reversed(pool.requeue))
            while waiting and len(pool.workers) < min(workers, len(sources)):
                pool.start()  # in place of one that died
            pool.feed(waiting)
        finished = True
    finally:  # interrupted, or the caller stopped reading: the videos in flight are dropped
        pool.stop(now=not finished)
        torch.set_num_threads(torch_threads)


# ---------------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    """What a batch run did; the ``*_seconds`` add up the time of each stage over all videos."""

    total: int  # videos found
    skipped: int = 0  # already answered in the output file
    done: int = 0  # predicted in this run
    failed: int = 0  # failed in this run (an error line each)
    frames: int = 0
    seconds: float = 0.0  # wall time of the run, from before the model is loaded
    worker_seconds: float = 0.0
    model_seconds: float = 0.0
    dropped_tail: bytes = field(default=b"", repr=False)  # a torn last line found (and removed) in the output file

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def videos_per_minute(self) -> float:
        return 60.0 * self.finished / self.seconds if self.seconds > 0 else 0.0


def predict_videos(
    videos: Sequence[str | Path],
    out: str | Path,
    settings: BatchSettings = BatchSettings(),
    *,
    workers: int = 0,
    ray_address: str | None = None,
    progress: Callable[[BatchSummary], None] | None = None,
    max_repeated_errors: int | None = MAX_REPEATED_ERRORS,
) -> BatchSummary:
    """Predict every video not yet answered in ``out`` and append its line there.

    Args:
        videos: the video files (see :func:`find_videos`).
        out: the JSON-lines file; created, or continued when it exists.
        settings: the options of ``unihar predict``.
        workers: processes for decoding and poses (0: all in this process); with ``ray_address``,
            the pose actors (0: one per CPU of the cluster).
        ray_address: run on Ray (:mod:`unihar.inference.batch_ray`): ``"local"`` starts Ray here,
            ``"auto"`` joins the cluster this machine is part of, else a cluster address.
        progress: called with the running summary after each video.
        max_repeated_errors: stop the run (a :class:`UniHARError`) when this many videos fail with the
            same unexpected error (a bug, a crash: not the video's fault, see :func:`failure`), which is
            the setup's, not the videos'; their lines are written first, so a run after the fix goes on
            from there. ``None``: never stop. Input errors (a corrupt file, nobody in view) never stop it.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise InputError(f"workers: expected an integer >= 0, got {workers!r}")
    if max_repeated_errors is not None and (
        not isinstance(max_repeated_errors, int) or isinstance(max_repeated_errors, bool) or max_repeated_errors < 1
    ):
        raise InputError(f"max_repeated_errors: expected an integer >= 1 or None, got {max_repeated_errors!r}")
    settings.check()
    started = time.perf_counter()
    with ResultsFile(out) as results:
        sources = [str(v) for v in videos]
        todo = [s for s in sources if not results.is_answered(s)]
        summary = BatchSummary(len(sources), skipped=len(sources) - len(todo), dropped_tail=results.dropped_tail)
        if not todo:
            return summary
        model = settings.model()
        settings.recognizer(model, settings.pose())  # checks topk and device before any worker starts
        if progress is not None:
            progress(summary)
        if ray_address is not None:
            from unihar.inference.batch_ray import ray_outcomes  # Ray is optional: loaded only when asked for

            outcomes = ray_outcomes(todo, settings, model, ray_address, workers)
        else:
            outcomes = _local_outcomes(todo, settings, model, workers)
        repeated: dict[str, int] = {}
        for outcome in outcomes:
            results.write(outcome.line)
            summary.failed += outcome.failed
            summary.done += not outcome.failed
            summary.frames += outcome.frames
            summary.worker_seconds += outcome.worker_seconds
            summary.model_seconds += outcome.model_seconds
            summary.seconds = time.perf_counter() - started
            if progress is not None:
                progress(summary)
            error = _unexpected_error(outcome.line)
            if error is not None:
                repeated[error] = repeated.get(error, 0) + 1
                if max_repeated_errors is not None and repeated[error] >= max_repeated_errors:
                    raise UniHARError(
                        f"stopped: {repeated[error]} videos failed with the same unexpected error, a problem of "
                        f"the setup or a bug rather than of the videos: {error} (the last: {outcome.line['source']}); "
                        f"the {summary.finished} videos finished in this run are in {str(out)!r}: once it is fixed, "
                        "run the same command again to go on (UNIHAR_DEBUG=1 shows the traceback)"
                    )
    summary.seconds = time.perf_counter() - started
    return summary
