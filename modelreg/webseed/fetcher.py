"""Filling the cache: fetch whole pieces from Hugging Face, verify each, store it; one fetch per piece.

:meth:`Fetcher.ensure` makes pieces present and checked. Held pieces not checked since their file last
changed on disk are hashed again first (:mod:`.diskcheck`); one that fails is dropped, counted in
``pieces_corrupt_total`` and fetched again. Missing pieces nobody is fetching yet are grouped into runs
of consecutive pieces (at most ``run_bytes``) and fetched by background tasks, one upstream range
request per file of the run; concurrent requests for the same pieces wait on the same futures, so a
crowd of clients asking for one file costs one upstream download. A piece whose hash does not match is
dropped, counted and fetched again (up to ``attempts`` times): a corrupt byte is never stored or served.

The bytes of a run are never copied by the gateway: each piece is the list of views of the buffers the
upstream response arrived in; a full piece is hashed (SHA-1 over the parts in turn) and written (one
``os.pwritev`` per file) in a worker thread while the next pieces arrive (at most :data:`_PIPELINE` per
run in flight, so memory stays bounded), so the event loop never hashes and hashing runs beside the
network on another core. A piece is marked stored only after its job returned, on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from modelreg.errors import UpstreamError, WebseedError
from modelreg.webseed.cache import Moves, PieceCache, TorrentStore
from modelreg.webseed.diskcheck import check_pieces
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.upstream import Upstream

_ZEROS = bytes(1 << 20)
#: Pieces of one run being hashed and written at once while the next ones arrive.
_PIPELINE = 2
#: A piece received in more parts than this is joined first (one ``pwritev`` takes at most IOV_MAX).
_MAX_PARTS = 64


class Fetcher:
    """Coalesced, verified piece downloads into a :class:`PieceCache`."""

    def __init__(
        self,
        cache: PieceCache,
        upstream: Upstream,
        metrics: Metrics,
        run_bytes: int = 8 << 20,
        attempts: int = 3,
        max_runs: int = 8,
    ):
        self.cache = cache
        self.upstream = upstream
        self.metrics = metrics
        self.run_bytes = run_bytes
        self.attempts = attempts
        self._runs = asyncio.Semaphore(max_runs)
        self._inflight: dict[tuple[str, int], asyncio.Future] = {}
        self._checking: dict[tuple[str, int], asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        # Hashing and writing get a thread per core of their own: more threads than cores (asyncio's
        # default pool has cores + 4) only time-slice SHA-1 over more pieces at once and make more
        # writers queue on the same file's lock, and the default pool stays free for checks and flushes.
        self._workers = ThreadPoolExecutor(
            max(2, min(max_runs * _PIPELINE, os.cpu_count() or 2)), thread_name_prefix="modelreg-fill"
        )
        self._closed = False
        #: Called with the bytes each stored piece added (``modelreg mirror`` draws its progress bar with it).
        self.on_stored: Callable[[int], None] = lambda n: None

    async def ensure(self, store: TorrentStore, pieces: range | list[int]) -> None:
        """Return once every piece in ``pieces`` is verified and cached, or raise UpstreamError."""
        suspect = store.unchecked(pieces)
        if suspect:
            await self._recheck(store, suspect)
        waits: list[asyncio.Future] = []
        claimed: list[int] = []
        for i in pieces:
            if store.has(i):
                continue
            fut = self._inflight.get((store.key, i))
            if fut is None:
                fut = asyncio.get_running_loop().create_future()
                fut.add_done_callback(_consume)
                self._inflight[(store.key, i)] = fut
                claimed.append(i)
            waits.append(fut)
        for run in self._runs_of(store, claimed):
            task = asyncio.create_task(self._fetch_run(store, run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if waits:
            await asyncio.gather(*(asyncio.shield(f) for f in waits))

    async def close(self) -> None:
        self._closed = True  # from now on a run fails at once (503) instead of starting
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._workers.shutdown(wait=False)  # every run drained its jobs: nothing is left to write

    async def _recheck(self, store: TorrentStore, pieces: list[int]) -> None:
        """Hash held pieces again from disk (in a thread; one check per piece however many ask).

        The check runs as its own task: a client leaving mid-way must not leave pieces marked as being
        checked, nor others waiting for them to go on unchecked.
        """
        waits, claimed = [], []
        for i in pieces:
            fut = self._checking.get((store.key, i))
            if fut is None:
                fut = self._checking[(store.key, i)] = asyncio.get_running_loop().create_future()
                fut.add_done_callback(_consume)
                claimed.append(i)
            waits.append(fut)
        if claimed:
            task = asyncio.create_task(self._check(store, claimed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*(asyncio.shield(f) for f in waits))

    async def _check(self, store: TorrentStore, claimed: list[int]) -> None:
        error: BaseException | None = None
        try:
            results = await asyncio.to_thread(check_pieces, store, claimed)
            bad = store.apply_checks(results)
            self.metrics.pieces_checked += len(claimed)
            if bad:
                self.metrics.pieces_corrupt += len(bad)
                store.flush_soon()
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else UpstreamError(503, "the gateway is shutting down")
            if not isinstance(exc, Exception):
                raise
        finally:
            for i in claimed:
                fut = self._checking.pop((store.key, i))
                if not fut.done():
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)

    def _runs_of(self, store: TorrentStore, claimed: list[int]) -> list[list[int]]:
        per_run = max(1, self.run_bytes // store.map.piece_length)
        runs: list[list[int]] = []
        for i in claimed:
            if runs and runs[-1][-1] == i - 1 and len(runs[-1]) < per_run:
                runs[-1].append(i)
            else:
                runs.append([i])
        return runs

    async def _fetch_run(self, store: TorrentStore, run: list[int]) -> None:
        todo = list(run)
        try:
            if self._closed:  # a request that came in while the gateway was closing
                raise UpstreamError(503, "the gateway is shutting down")
            async with self._runs:
                for attempt in range(1, self.attempts + 1):
                    await self.cache.make_room(sum(store.piece_payload(i) for i in todo))
                    todo = await self._fetch_once(store, todo)
                    if not todo:
                        break
                    if attempt == self.attempts:
                        raise UpstreamError(
                            502,
                            f"piece {todo[0]} of {store.torrent.name} failed its hash check {self.attempts} times: "
                            "Hugging Face is serving different bytes than the torrent describes",
                        )
        except BaseException as exc:
            if isinstance(exc, OSError):  # disk full, cache folder gone...: the client may try again later
                err: BaseException = WebseedError(503, f"the mirror cache cannot store pieces: {exc}")
            elif isinstance(exc, Exception):
                err = exc
            else:
                err = UpstreamError(503, "the gateway is shutting down")
            for i in todo:
                fut = self._inflight.pop((store.key, i), None)
                if fut is not None and not fut.done():
                    fut.set_exception(err)
            if not isinstance(exc, Exception):
                raise
        finally:
            store.flush_soon()
            self.metrics.cache_bytes = self.cache.used

    async def _fetch_once(self, store: TorrentStore, todo: list[int]) -> list[int]:
        """Fetch consecutive pieces ``todo``; store the good ones, return those that failed their hash."""
        pmap = store.map
        start = pmap.piece_span(todo[0])[0]
        end = pmap.piece_span(todo[-1])[1]
        bad: list[int] = []
        wanted = set(todo)
        parts: list[memoryview] = []
        fill, index = 0, todo[0]
        size = _size(pmap, index)
        pending: deque[tuple[int, asyncio.Future]] = deque()
        touched = {seg.entry.path_str: seg.entry for seg in pmap.segments(start, end) if not seg.entry.is_pad}
        with contextlib.ExitStack() as stack:
            for entry in touched.values():
                stack.enter_context(self.cache.pinned(store, entry))
            store.prepare_files(touched.values())
            try:
                async for chunk in self._stream(store, start, end):
                    data = memoryview(chunk)
                    while len(data):
                        n = min(len(data), size - fill)
                        parts.append(data[:n])
                        fill += n
                        data = data[n:]
                        if fill < size:
                            continue
                        while len(pending) >= _PIPELINE:  # bounded: memory and pieces not yet marked
                            await self._settle(store, *pending.popleft(), bad)
                        if index in wanted and not store.has(index):
                            job = asyncio.get_running_loop().run_in_executor(
                                self._workers, _verify_and_write, store, index, parts
                            )
                            pending.append((index, job))
                        index, parts, fill = index + 1, [], 0
                        if index > todo[-1]:
                            break
                        size = _size(pmap, index)
            except BaseException:
                await self._drain(store, pending, bad)  # what failed here is what the caller hears of
                raise
            failure = await self._drain(store, pending, bad)
            if failure is not None:
                raise failure
            for entry in touched.values():
                self.cache.touch(store, entry)
        return bad

    async def _drain(self, store: TorrentStore, pending: deque, bad: list[int]) -> BaseException | None:
        """Settle every job still pending, even after a failure (none may write once its run is over).

        Returns the first job's exception, if any.
        """
        failure: BaseException | None = None
        while pending:
            try:
                await self._settle(store, *pending.popleft(), bad)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                failure = failure or exc
        return failure

    async def _settle(self, store: TorrentStore, index: int, job: asyncio.Future, bad: list[int]) -> None:
        """Record the outcome of a piece's hash-and-write job."""
        moves = await job
        if moves is None:
            self.metrics.pieces_corrupt += 1
            bad.append(index)
            return
        self.on_stored(store.mark_stored(index, moves))
        self.metrics.pieces_fetched += 1
        fut = self._inflight.pop((store.key, index), None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _stream(self, store: TorrentStore, start: int, end: int) -> AsyncIterator[bytes]:
        """The torrent's stream bytes ``[start, end)``: files from upstream, pad files as zeros."""
        for seg in store.map.segments(start, end):
            if seg.entry.is_pad:
                left = seg.length
                while left:
                    n = min(left, len(_ZEROS))
                    yield _ZEROS[:n]
                    left -= n
                continue
            chunks = self.upstream.iter_range(
                store.served, seg.entry.path_str, seg.file_offset, seg.file_offset + seg.length
            )
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk


def _size(pmap, index: int) -> int:
    start, end = pmap.piece_span(index)
    return end - start


def _verify_and_write(store: TorrentStore, index: int, parts: list[memoryview]) -> Moves | None:
    """In a worker thread: None if ``parts`` (joined) are not piece ``index``, else write them.

    The parts are the received buffers themselves (never copied into a piece buffer): SHA-1 runs over
    them in turn, and :meth:`~TorrentStore.write_piece_data` hands them to one ``pwritev`` per file.
    """
    if len(parts) > _MAX_PARTS:
        parts = [memoryview(b"".join(parts))]
    pmap = store.map
    start, end = pmap.piece_span(index)
    if sum(len(p) for p in parts) != end - start:
        return None
    digests = store.torrent.pieces
    if digests:
        sha1 = hashlib.sha1()
        for part in parts:
            sha1.update(part)
        if sha1.digest() != digests[index * 20 : index * 20 + 20]:
            return None
    elif not pmap.verify(index, b"".join(parts)):  # v2 only: merkle over 16 KiB blocks of the whole piece
        return None
    return store.write_piece_data(index, parts)


def _consume(fut: asyncio.Future) -> None:
    """Mark a failed future's exception as seen when no request is left waiting for it."""
    if not fut.cancelled():
        fut.exception()
