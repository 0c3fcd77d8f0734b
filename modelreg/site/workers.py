"""Rendering the models that must be rendered in worker processes, one per core.

:func:`~modelreg.site.render.render_site` walks the catalog in order and hands each model it cannot
reuse to a :class:`RenderPool`, which sends them to the workers in batches; each worker prepares the
model (reads its file list from the committed parse cache, joins its metadata) and renders it with its
own template environment, writing the model's files into the staging folder, and sends back the model's
parts of the shared files and the stat of its files. The build's process takes the results in catalog
order and writes everything shared, so the site is byte for byte the one a single process makes.

A registry with few models to render never starts a process (that takes longer than rendering them).
An error in a worker is raised in the build's process as the same error; the workers ignore Ctrl-C
(the build's process stops them) and die with the build's process however it ends
(:func:`~modelreg.site.parsecache.die_with_parent`).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelreg.config import Config
from modelreg.errors import BuildError, ModelregError
from modelreg.fsutil import ReadAhead
from modelreg.registry.catalog import Model
from modelreg.site.parsecache import die_with_parent
from modelreg.site.render import render_model
from modelreg.site.reuse import run_here
from modelreg.site.templating import Theme

#: Models a worker renders per batch: large enough that sending them costs little next to rendering
#: them (a few ms each; the build's process and the pool's threads take turns once per batch, with
#: 16 that was ~8% of the build's process's time), small enough that it never waits long for the oldest.
BATCH = 64
#: With the worker count chosen by the build, this many models are rendered in the build's process
#: before workers are started: a rebuild that renders a few never starts one.
START_AFTER = 256

#: (model as the catalog has it but for its torrent, which the worker reads itself: None; SHA-256 of the
#: torrent; its identity when parsed, or None)
Job = tuple[Model, str, "tuple[int, int, int, int] | None"]
#: What a worker sends back per model: its parts, its files and their size and ``st_mtime_ns``.
Result = tuple[dict[str, Any], tuple[str, ...], dict[str, tuple[int, int]]]


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class RenderPool:
    """Worker processes that prepare and render models, their results taken in the order they were sent.

    ``jobs`` workers (None: one per core, started only after :data:`START_AFTER` models to render; 1:
    none, every model is rendered in the build's process). ``prepare(model, digest, parsed)`` completes a
    model in a worker (it is pickled to each worker); ``identities`` maps a torrent's absolute path to
    its identity when parsed. Use as a context manager: leaving it stops the workers, and on an error
    drops the batches not yet started.
    """

    def __init__(self, jobs: int | None, config: Config, out: Path,
                 prepare: Callable[[Model, str, tuple[int, int, int, int] | None], Model],
                 identities: dict[str, tuple[int, int, int, int]]):
        self.workers = default_jobs() if jobs is None else jobs
        self.start_after = START_AFTER if jobs is None else 0
        self.config, self.out, self.prepare, self.identities = config, out, prepare, identities
        #: Models that may wait for a worker: a few batches per worker keep each busy.
        self.window = 4 * BATCH * max(self.workers, 1)
        self.seen = 0
        self.executor: ProcessPoolExecutor | None = None
        self.batch: list[Job] = []
        #: The batch each ticket belongs to (the current one, not yet sent, holds None).
        self.futures: list[Future | None] = []
        #: How many models were submitted before each batch, and in all.
        self.starts: list[int] = []
        self.sent = 0
        #: The torrents of the models sent, read ahead of the workers (copied into the site as they are
        #: rendered, when a cold page cache would have them wait for each read).
        self.ahead: ReadAhead | None = None

    def claims(self) -> bool:
        if self.workers < 2:
            return False
        self.seen += 1
        return self.seen > self.start_after

    def submit(self, model: Model, digest: str) -> tuple[int, int]:
        # sent without the catalog's torrent: the worker reads it with its files (prepare), and pickling it
        # would load the fields of every catalog torrent sent into this process for the rest of the build
        # (a re-render of 100,000 models: their column and a filled torrent each, some 200 MB)
        sent = replace(model, torrent=None)
        self.batch.append((sent, digest, self.identities.get(os.path.abspath(model.path))))
        if len(self.batch) == 1:
            self.futures.append(None)
            self.starts.append(self.sent)
        self.sent += 1
        ticket = (len(self.futures) - 1, len(self.batch) - 1)
        if len(self.batch) == BATCH:
            self._send()
        return ticket

    def _send(self) -> None:
        if self.executor is None:
            self.executor = ProcessPoolExecutor(self.workers, initializer=_start,
                                                initargs=(os.getpid(), self.config, self.out, self.prepare))
        self.futures[-1] = self.executor.submit(_render_batch, self.batch)
        if self.ahead is None:  # after the first submit: the workers are forked before the threads start
            self.ahead = ReadAhead(more=True).__enter__()
        self.ahead.add(model.path for model, _, _ in self.batch)
        self.batch = []

    def done(self, ticket: tuple[int, int]) -> bool:
        future = self.futures[ticket[0]]
        return future is not None and future.done()

    def result(self, ticket: tuple[int, int]) -> Result:
        """The ticket's result; raises the error its worker met, as the build's process would have.

        Raises:
            ModelregError: preparing or rendering the model failed (a torrent changed, ...).
            BuildError: a worker died.
        """
        number, index = ticket
        if self.futures[number] is None:
            self._send()
        future = self.futures[number]
        assert future is not None
        results = _outcome(future)
        result = results[index]
        if self.ahead is not None:
            self.ahead.used(self.starts[number] + index + 1)
        if index == len(results) - 1:
            self.futures[number] = None  # the batch is taken: free it
        return result

    def run(self, function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """Call ``function(*args)`` in a worker, if they are started (else here, now), while this process
        goes on (the rest of the site once the models are rendered, for example): a function that waits
        for its result (raising its error, as :meth:`result` does). The function and its arguments are
        sent by pickle.

        Raises:
            BuildError: a worker died.
        """
        if self.executor is None:
            return run_here(function, *args)
        try:
            future = self.executor.submit(function, *args)
        except BrokenProcessPool:
            raise BuildError(_DIED) from None
        return lambda: _outcome(future)

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, kind: type | None, *_: object) -> None:
        if self.ahead is not None:
            self.ahead.__exit__(None, None, None)
            self.ahead = None
        if self.executor is not None:
            # on an error, the batches waiting are dropped; the running ones end within a batch's time
            self.executor.shutdown(wait=True, cancel_futures=kind is not None)
            self.executor = None


def _outcome(future: Future) -> Any:
    """The result of a worker's call; raises its error, as the build's process would have.

    Raises:
        ModelregError: the call raised it.
        BuildError: a worker died.
    """
    try:
        return future.result()
    except ModelregError as exc:
        raise exc.with_traceback(None) from None  # the worker's traceback is no help to a user
    except BrokenProcessPool:
        raise BuildError(_DIED) from None


_DIED = ("a render worker process ended abruptly (killed, or out of memory?); "
         "the site was left as it was: build again")


_worker: dict[str, Any] = {}


def _start(parent: int, config: Config, out: Path, prepare: Callable) -> None:
    """Worker initializer: die with the build, leave Ctrl-C to it, and make the template environment."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = Theme(config.path(config.theme_dir)).environment(config)
    _worker.update(env=env, entry=env.get_template("entry.html"), config=config, out=out, prepare=prepare)


def _render_batch(batch: list[Job]) -> list[Result]:
    """Worker: prepare and render each model of the batch.

    Raises:
        ModelregError: as :func:`~modelreg.site.render.render_model` or ``prepare`` raise it (made a
            :class:`BuildError` with the same message if it cannot be sent back as it is).
    """
    env, entry, config, out, prepare = (_worker[k] for k in ("env", "entry", "config", "out", "prepare"))
    results = []
    try:
        for model, digest, parsed in batch:
            full = prepare(model, digest, parsed)
            parts, files = render_model(env, entry, full, config, out, digest, parsed)
            stats = {}
            for rel in files:
                st = os.stat(os.path.join(out, rel))
                stats[rel] = (st.st_size, st.st_mtime_ns)
            results.append((parts, files, stats))
            gc.collect(0)  # see render_site: jinja's reference cycles, with the cyclic collector paused
    except ModelregError as exc:
        raise _portable(exc) from None
    return results


def _portable(exc: ModelregError) -> ModelregError:
    """The error itself if it survives being sent to another process, else a BuildError that says the same."""
    try:
        back = pickle.loads(pickle.dumps(exc))
        if type(back) is type(exc) and str(back) == str(exc):
            return exc
    except Exception:  # noqa: BLE001 - any failure to rebuild it means it cannot be sent as it is
        pass
    return BuildError(str(exc))
