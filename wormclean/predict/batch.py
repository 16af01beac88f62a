"""Many videos at once: mask jobs run in this process, in worker processes of this machine, or on a Dask cluster.

One code path serves the three: the videos are submitted to an executor (:class:`concurrent.futures.Executor`;
inline for one job, a process pool for ``jobs`` > 1, a :mod:`distributed` client's executor for a cluster),
and the results are collected as they come. Each worker process loads the model once and keeps it for every
video it gets.

Writing into a folder, a batch resumes: a complete output already there (:func:`~wormclean.io.masked_video.
is_complete`) is skipped and counted, unless ``overwrite``. A video that fails is tried once more, then
reported, and the others go on. ``OUT/wormclean-batch.csv`` lists every video with its status, frames,
seconds and error, one row appended as each finishes, so an interrupted batch leaves its report behind.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import logging
import logging.handlers
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from wormclean.errors import OutputError, SettingsError, WormcleanError
from wormclean.io.masked_video import is_complete
from wormclean.predict.cleaner import Cleaner
from wormclean.predict.pipeline import OUTPUT_SUFFIXES, MaskResult, mask_video, output_paths
from wormclean.settings import MaskSettings
from wormclean.stopping import Stopped, stop_on_signals

log = logging.getLogger(__name__)

BATCH_REPORT = "wormclean-batch.csv"
"""The batch report's name in the output folder."""

REPORT_COLUMNS = ("video", "output", "status", "frames", "seconds", "attempts", "broken_at", "error")

ATTEMPTS = 2
"""Tries per video whose worker was lost (a crash in a decoder): it is tried once more before it is reported.
Failures the job reports itself (an undecodable video, an output that cannot be written, a full disk) would
only recur, and are reported at once."""

_PROGRESS_EVERY_S = 0.5  # a worker reports its frames at most this often
_POLL_S = 0.25  # the driver looks at the workers' reports at least this often


@dataclass(frozen=True)
class BatchItem:
    """One video of a batch and where its output goes; ``replace``: write over what is there."""

    video: Path
    output: Path
    replace: bool = False


@dataclass(frozen=True)
class WorkerFrames:
    """A worker's progress on its current video: ``done`` of ``total`` frames."""

    worker: str
    video: Path
    done: int
    total: int


@dataclass
class BatchStatus:
    """Where a batch stands, given to the progress callback after every change.

    Attributes
    ----------
    n_videos : int
        Videos in the batch, skipped ones included.
    n_skipped, n_done, n_failed : int
        Videos skipped (complete outputs found), written and failed so far.
    finished_frames : int
        Frames of the videos this run has written.
    elapsed_s : float
        Seconds since the batch started.
    workers : dict
        The latest :class:`WorkerFrames` of each worker with a video in progress, by worker name (only from
        workers of this machine; a cluster reports whole videos).
    """

    n_videos: int
    n_skipped: int = 0
    n_done: int = 0
    n_failed: int = 0
    finished_frames: int = 0
    elapsed_s: float = 0.0
    workers: dict[str, WorkerFrames] = field(default_factory=dict)

    @property
    def n_finished(self) -> int:
        """Videos finished one way or another (skipped, done or failed)."""
        return self.n_skipped + self.n_done + self.n_failed

    @property
    def frames(self) -> int:
        """Frames masked by this run so far, those of videos still in progress included."""
        return self.finished_frames + sum(update.done for update in self.workers.values())

    @property
    def frames_per_s(self) -> float:
        """Frames masked per second of the batch so far."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the rate of videos so far (videos in progress count by their fraction done);
        None before there is any measure."""
        to_do = self.n_videos - self.n_skipped
        progressed = self.n_done + self.n_failed + sum(w.done / w.total for w in self.workers.values() if w.total)
        if progressed <= 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s / progressed * max(0.0, to_do - progressed)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, so a cluster's allocation is respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int, cores: int) -> int:
    """Threads each of ``jobs`` parallel jobs gets so that together they fit ``cores`` (at least 1)."""
    return max(1, cores // max(1, jobs))


def set_threads(threads: int) -> None:
    """Limit torch and OpenCV in this process to ``threads`` threads each."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def plan_batch(
    videos: list[Path], output: str | os.PathLike, overwrite: bool
) -> tuple[list[BatchItem], list[MaskResult]]:
    """The videos to mask, and those skipped because a complete output is there already (folder mode only).

    With a file for ``output`` (one video) nothing is skipped: an existing file is an error unless ``overwrite``,
    as for a single job. In folder mode an existing output that is not complete (it does not open, or holds no
    frame) is written again, with a warning.
    """
    outputs = output_paths(videos, output)
    if Path(output).suffix.lower() in OUTPUT_SUFFIXES:
        return [BatchItem(video, path, overwrite) for video, path in zip(videos, outputs)], []
    items, skipped = [], []
    for video, path in zip(videos, outputs):
        if overwrite or not path.exists():
            items.append(BatchItem(video, path, overwrite))
        elif is_complete(path):
            skipped.append(MaskResult(video, path, attempts=0, skipped=True))
        else:
            log.warning("%s exists but is not a complete wormclean output: masking %s again", path, video)
            items.append(BatchItem(video, path, True))
    return items, skipped


# -- the worker side: runs in whichever process the executor chose ------------------------------------------
_cleaners: dict = {}  # MaskSettings -> Cleaner: each process loads its model once
_reports: list = []  # where this worker process sends its WorkerFrames (a queue's put), if anywhere


def _start_worker(threads: int | None, reports) -> None:
    """Initialise a worker of this machine: its share of the cores and its progress channel."""
    if threads is not None:
        set_threads(threads)
    _reports[:] = [reports.put] if reports is not None else []


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _start_pool_worker(threads: int, reports, parent: int, log_level: int) -> None:
    """Initialise a worker process of a pool: it dies with its parent, and its log records go to the parent.

    The parent's death (even by SIGKILL) sends the worker SIGTERM (Linux), which stops its video cleanly
    (:func:`_mask_in_worker`). The records go through the progress channel and are handled by the parent's
    loggers, so they read as the parent's own (``WARNING: ...``) wherever the parent's logging sends them.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(128 + signal.SIGTERM)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(reports)]
    root.setLevel(log_level)
    _start_worker(threads, reports)


def worker_name() -> str:
    """This process, as named in progress lines: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def mask_item(item: BatchItem, settings: MaskSettings, command_line: str = "") -> MaskResult:
    """Mask one video of a batch in this process: its :class:`MaskResult`, with ``error`` set on a failure
    (an undecodable video, an output that cannot be written) rather than raised."""
    cleaner = _cleaners.get(settings)
    if cleaner is None:
        cleaner = _cleaners[settings] = Cleaner.from_settings(settings)
    name = worker_name()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if _reports and (now - last[0] >= _PROGRESS_EVERY_S or done == total):
            last[0] = now
            _reports[0](WorkerFrames(name, item.video, done, total))

    started = time.perf_counter()
    try:
        result = mask_video(item.video, item.output, settings, cleaner, item.replace, progress, command_line)
    except (WormcleanError, OSError) as error:
        message = str(error) if isinstance(error, WormcleanError) else f"{error.strerror or error}"
        result = MaskResult(item.video, item.output, error=message)
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


def _mask_in_worker(item: BatchItem, settings: MaskSettings, command_line: str = "") -> MaskResult:
    """:func:`mask_item` in a worker process of a pool: SIGTERM or SIGHUP while it runs (the parent stopping or
    dying) removes the video's temporary output and releases its lock, then ends the process. An idle worker
    has nothing to clean up and ends at once."""
    with stop_on_signals():
        try:
            return mask_item(item, settings, command_line)
        except Stopped as stop:
            os._exit(stop.exit_code)  # the pool's loop would otherwise wait for the next task


# -- the driver side ------------------------------------------------------------------------------------------
class _Inline(Executor):
    """Runs each task at once, in this process (one job: no process to start, the progress comes live)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(error)
        return future


class _Pool(Executor):
    """A process pool of this machine that starts afresh when one of its processes dies (a crash in a decoder):
    the tasks it had are reported lost and tried again on the new pool."""

    def __init__(self, jobs: int, threads: int, reports):
        self._arguments = dict(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a process that holds threads
            initializer=_start_pool_worker,
            initargs=(threads, reports, os.getpid(), logging.getLogger().getEffectiveLevel()),
        )
        self._pool = ProcessPoolExecutor(**self._arguments)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            log.warning("a worker process died; starting the pool again")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ProcessPoolExecutor(**self._arguments)
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def stop(self) -> None:
        """Stop the videos in progress now: SIGTERM to every worker, each of which cleans up and ends."""
        # ProcessPoolExecutor has no way to end its workers before Python 3.14 (terminate_workers).
        for pid in list(self._pool._processes or {}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _cluster(address: str) -> tuple[Executor, Callable[[], None]]:
    """An executor on the Dask cluster whose scheduler is at ``address``, and how to let go of it."""
    try:
        from distributed import Client
    except ImportError:
        raise SettingsError(
            "--scheduler needs the Dask 'distributed' package: pip install 'wormclean[cluster]'"
        ) from None
    try:
        client = Client(address, timeout=30, set_as_default=False)
    except OSError as error:
        raise SettingsError(f"cannot reach the Dask scheduler at {address} ({error})") from None
    log.info("Dask cluster at %s: %d workers", address, len(client.scheduler_info().get("workers", {})))
    return client.get_executor(pure=False), client.close


class _Report:
    """``wormclean-batch.csv``: a header, then one row per video as it finishes (flushed at once).

    A report that cannot be written (a full disk) does not stop the batch: a warning names it, and it is
    removed if it holds nothing.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = open(path, "w", newline="")
        except OSError as error:
            raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
        self._writer = csv.DictWriter(self._file, fieldnames=REPORT_COLUMNS)
        self._write(self._writer.writeheader)

    def _write(self, write: Callable[[], object]) -> None:
        """Run ``write`` and flush; on an OS error, warn and write nothing more."""
        if self._file is None:
            return
        try:
            write()
            self._file.flush()
        except OSError as error:
            log.warning("cannot write %s: %s; the batch goes on without its report", self.path,
                        error.strerror or error)
            self.close()
            if self.path.stat().st_size == 0:
                self.path.unlink()

    def add(self, result: MaskResult) -> None:
        self._write(lambda: self._writer.writerow(
            {
                "video": str(result.video),
                "output": str(result.output),
                "status": result.status,
                "frames": result.n_frames,
                "seconds": f"{result.seconds:.3f}",
                "attempts": result.attempts,
                "broken_at": "" if result.broken_at is None else result.broken_at,
                "error": result.error or "",
            }
        ))

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # the buffer's last write fails again on a full disk
                self._file.close()
            self._file = None


def mask_batch(
    videos: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    settings: MaskSettings,
    jobs: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[BatchStatus], None] | None = None,
    on_result: Callable[[MaskResult], None] | None = None,
    command_line: str = "",
) -> list[MaskResult]:
    """Mask several videos into one output each (see :func:`~wormclean.predict.pipeline.output_paths`).

    Problems common to all (the model, the settings, the output folder, the cluster) raise
    :class:`~wormclean.errors.WormcleanError` before any work; a video that fails twice is reported in its
    result and the others are still done.

    Parameters
    ----------
    videos : paths
        The input videos.
    output : path
        An .hdf5/.h5 file (one video) or a folder, created if missing; in folder mode complete outputs there
        are skipped (unless ``overwrite``) and the report ``wormclean-batch.csv`` is written there.
    settings : MaskSettings
        The settings of every job.
    jobs : int
        Videos masked at once on this machine, each in its own process with its share of the cores
        (1: in this process).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``): one task per video on its workers, which must see
        the videos, the output folder and the model under the same paths. ``jobs`` is then not used.
    overwrite : bool
        Write every output again.
    progress : callable, optional
        Called with the :class:`BatchStatus` as frames and videos finish.
    on_result : callable, optional
        Called with each video's final :class:`MaskResult` (skipped ones first).
    command_line : str
        The command that started the batch, recorded in each output's provenance.

    Returns
    -------
    list of MaskResult
        One per video, in the order of ``videos``.
    """
    from wormclean.model.modelfile import load_model
    from wormclean.model.registry import resolve_model
    from wormclean.predict.cleaner import check_video_model

    if jobs < 1:
        raise SettingsError(f"--jobs must be at least 1, got {jobs}")
    videos = [Path(video) for video in videos]
    folder = Path(output)
    folder_mode = folder.suffix.lower() not in OUTPUT_SUFFIXES
    items, skipped = plan_batch(videos, output, overwrite)
    if folder_mode:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create output folder {folder} ({error.strerror or error})") from None
        if not os.access(folder, os.W_OK):
            raise OutputError(f"output folder {folder} is not writable")
    model_path = resolve_model(settings.model)
    check_video_model(load_model(model_path))  # a bad model fails here, once, not in every worker
    # Absolute paths: workers (of a cluster) need not share this process's working folder.
    settings = dataclasses.replace(settings, model=str(Path(model_path).absolute()))
    status = BatchStatus(n_videos=len(videos), n_skipped=len(skipped))
    results: dict[Path, MaskResult] = {}
    report = _Report(folder / BATCH_REPORT) if folder_mode else None
    started = time.perf_counter()

    def finish(result: MaskResult) -> None:
        results[result.video] = result
        if report is not None:
            report.add(result)
        if on_result is not None:
            on_result(result)

    def frames_seen(update: WorkerFrames) -> None:
        status.workers[update.worker] = update
        tell()

    def tell() -> None:
        status.elapsed_s = time.perf_counter() - started
        if progress is not None:
            progress(status)

    try:
        for result in skipped:
            finish(result)
        tell()
        if items:
            _run(items, settings, jobs, scheduler, command_line, status, frames_seen, finish, tell)
    finally:
        if report is not None:
            report.close()
    return [results[video] for video in videos]


def _run(items, settings, jobs, cluster_address, command_line, status, frames_seen, finish, tell) -> None:
    """Submit the items (a few more than there are workers, all of them to a cluster, whose scheduler balances
    them), try each failure once more, and hand each final result to ``finish``."""
    reports = None
    release: Callable[[], None] = lambda: None  # noqa: E731
    absolute = {item: item for item in items}
    task = mask_item
    if cluster_address is not None:
        executor, release = _cluster(cluster_address)
        absolute = {item: BatchItem(item.video.absolute(), item.output.absolute(), item.replace) for item in items}
        in_flight = len(items)
    elif jobs > 1 and len(items) > 1:
        workers = min(jobs, len(items))
        reports = multiprocessing.get_context("spawn").Queue()
        executor = _Pool(workers, threads_per_job(workers, available_cores()), reports)
        task = _mask_in_worker
        in_flight = 2 * workers
    else:
        executor = _Inline()
        _start_worker(None, _Direct(frames_seen))
        in_flight = 1
    waiting = deque((item, 1) for item in items)
    pending: dict[Future, tuple[BatchItem, int]] = {}
    try:
        while waiting or pending:
            while waiting and len(pending) < in_flight:
                item, attempt = waiting.popleft()
                pending[executor.submit(task, absolute[item], settings, command_line)] = (item, attempt)
            finished, _ = wait(list(pending), timeout=_POLL_S, return_when=FIRST_COMPLETED)
            _drain(reports, frames_seen)
            for future in finished:
                item, attempt = pending.pop(future)
                result, lost = _outcome(future, item)
                result = dataclasses.replace(result, video=item.video, output=item.output, attempts=attempt)
                for worker, update in list(status.workers.items()):
                    if update.video == absolute[item].video:
                        del status.workers[worker]
                if lost and attempt < ATTEMPTS:
                    log.info("%s failed (%s); trying it once more", item.video, result.error)
                    waiting.appendleft((item, attempt + 1))
                    continue
                if result.error is None:
                    status.n_done += 1
                    status.finished_frames += result.n_frames
                else:
                    status.n_failed += 1
                finish(result)
            tell()
    except BaseException:
        if isinstance(executor, _Pool):  # stopped (Ctrl-C, SIGTERM) or a bug: no video goes on without us
            executor.stop()
        raise
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True)
        _drain(reports, lambda update: None)  # the workers' last log records
        release()
        _start_worker(None, None)


class _Direct:
    """A progress channel to a callback in this same process (what a queue is between processes)."""

    def __init__(self, callback: Callable[[WorkerFrames], None]):
        self.put = callback


def _drain(reports, frames_seen: Callable[[WorkerFrames], None]) -> None:
    """Hand the workers' progress reports waiting in ``reports`` to ``frames_seen`` and their log records to
    this process's loggers."""
    if reports is None:
        return
    while True:
        try:
            report = reports.get_nowait()
        except queue.Empty:
            return
        if isinstance(report, logging.LogRecord):
            logger = logging.getLogger(report.name)
            if logger.isEnabledFor(report.levelno):  # the levels set here hold for the workers' records too
                logger.handle(report)
        else:
            frames_seen(report)


def _outcome(future: Future, item: BatchItem) -> tuple[MaskResult, bool]:
    """The task's result, and whether it was lost rather than failed (worth one more try): a task that
    raised (a lost worker, a bug) becomes a failed result with the reason."""
    try:
        return future.result(), False
    except BrokenProcessPool:
        return MaskResult(item.video, item.output, error="its worker process died (a crash while decoding?)"), True
    except Exception as error:  # noqa: BLE001 - every video gets a row, whatever went wrong
        log.debug("%s: the task raised", item.video, exc_info=True)
        return MaskResult(item.video, item.output, error=f"{type(error).__name__}: {error}"), True
