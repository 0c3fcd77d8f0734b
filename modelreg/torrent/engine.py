"""The threaded engine that feeds the hashers of :mod:`modelreg.torrent.hashing` from a source.

:func:`hash_stream` reads a :class:`~modelreg.torrent.source.Source` once, in layout
order, and hands each chunk to one worker thread per hasher through bounded
queues. hashlib releases the GIL on large buffers, so SHA-1 and SHA-256 run on
different cores while memory stays bounded whatever the model's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from modelreg.errors import CreateError
from modelreg.torrent.hashing import FileHashes, FileTreeHasher, PieceHasher, Sha256Checker
from modelreg.torrent.layout import Layout, LayoutEntry
from modelreg.torrent.source import Source

#: Chunks smaller than this (typical of network reads) are gathered into one
#: buffer of at least GATHER_SIZE bytes before they go to the workers, so the
#: per-chunk cost of the queues stays small.
SMALL_CHUNK = 1024 * 1024
GATHER_SIZE = 4 * 1024 * 1024

#: Chunks waiting in each worker's queue; with 8 MiB chunks this bounds the
#: engine's buffers to about (QUEUE_DEPTH + 2) * 8 MiB.
QUEUE_DEPTH = 4


@dataclass(frozen=True)
class StreamHashes:
    """What :func:`hash_stream` computed for a layout.

    ``pieces`` is the v1 SHA-1 concatenation (None without v1); ``files`` maps
    the index of each layout entry that is a real file to its v2 hashes (empty
    without v2).
    """

    pieces: bytes | None
    files: dict[int, FileHashes]


class _Worker:
    """A thread draining a bounded queue of calls; the first error stops it."""

    _STOP = object()

    def __init__(self, name: str) -> None:
        self.queue: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is self._STOP:
                return
            if self.error is not None:
                continue  # drain without work so the producer never blocks
            func, args = item
            try:
                func(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the producer
                self.error = exc

    def put(self, func: Callable, *args: object) -> None:
        self.queue.put((func, args))

    def stop(self) -> None:
        self.queue.put(self._STOP)
        self.thread.join()


class _V2State:
    """Per-file v2 hashers, used only from the v2 worker thread."""

    def __init__(self, piece_length: int) -> None:
        self.piece_length = piece_length
        self.current: FileTreeHasher | None = None
        self.files: dict[int, FileHashes] = {}

    def begin(self, size: int) -> None:
        self.current = FileTreeHasher(self.piece_length, size)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        assert self.current is not None
        self.current.update(data)

    def end(self, index: int) -> None:
        assert self.current is not None
        self.files[index] = self.current.finish()
        self.current = None


class _CheckState:
    """Whole-file SHA-256 checks against the source's expected digests."""

    def __init__(self) -> None:
        self.current: Sha256Checker | None = None
        self.mismatches: list[str] = []

    def begin(self, expected: str | None) -> None:
        self.current = Sha256Checker(expected) if expected else None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self.current is not None:
            self.current.update(data)

    def end(self, path: str) -> None:
        if self.current is not None and not self.current.matches():
            self.mismatches.append(path)
        self.current = None


ProgressCallback = Callable[[int], None]


def _gathered(chunks: Iterable[bytes | bytearray | memoryview]) -> Iterator[bytes | bytearray | memoryview]:
    """Pass large chunks through; gather runs of small ones into one buffer."""
    pending = bytearray()
    for chunk in chunks:
        size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        if size >= SMALL_CHUNK:
            if pending:
                yield pending
                pending = bytearray()
            yield chunk
        elif size:
            pending += chunk
            if len(pending) >= GATHER_SIZE:
                yield pending
                pending = bytearray()
    if pending:
        yield pending


def hash_stream(
    source: Source,
    layout: Layout,
    *,
    progress: ProgressCallback | None = None,
    on_file: Callable[[LayoutEntry], None] | None = None,
) -> StreamHashes:
    """Read every file of ``source`` once, in ``layout`` order, and hash it.

    v1 hashing runs on one thread, v2 on another and, when the source gives
    expected SHA-256 digests, the whole-file check on a third. ``progress`` is
    called with the number of bytes just read; ``on_file`` before each file.
    Raises :class:`CreateError` when a file's length differs from the one
    announced or its SHA-256 is not the expected one.
    """
    files = list(source.files)
    checking = any(f.sha256 for f in files)
    v1 = PieceHasher(layout.piece_length) if layout.has_v1 else None
    v2 = _V2State(layout.piece_length) if layout.has_v2 else None
    check = _CheckState() if checking else None

    v1_worker = _Worker("modelreg-sha1") if v1 else None
    v2_worker = _Worker("modelreg-sha256-tree") if v2 else None
    check_worker = _Worker("modelreg-sha256-file") if check else None
    workers = [w for w in (v1_worker, v2_worker, check_worker) if w is not None]

    calls: list[tuple[_Worker, Callable]] = []
    if v1_worker:
        calls.append((v1_worker, v1.update))  # type: ignore[union-attr]
    if v2_worker:
        calls.append((v2_worker, v2.update))  # type: ignore[union-attr]
    if check_worker:
        calls.append((check_worker, check.update))  # type: ignore[union-attr]

    def raise_worker_error() -> None:
        for worker in workers:
            if worker.error is not None:
                raise worker.error

    try:
        for index, entry in enumerate(layout.entries):
            if entry.is_pad:
                if v1_worker:
                    v1_worker.put(v1.zeros, entry.size)  # type: ignore[union-attr]
                continue
            assert entry.source_index is not None
            file = files[entry.source_index]
            if on_file:
                on_file(entry)
            if v2_worker:
                v2_worker.put(v2.begin, entry.size)  # type: ignore[union-attr]
            if check_worker:
                check_worker.put(check.begin, file.sha256)  # type: ignore[union-attr]
            seen = 0
            for chunk in _gathered(source.chunks(file)):
                size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
                seen += size
                if seen > entry.size:
                    raise CreateError(
                        f"{source.name}/{entry.path_str}: longer than its announced "
                        f"{entry.size} bytes (did it change while hashing?)"
                    )
                for worker, func in calls:
                    worker.put(func, chunk)
                if progress:
                    progress(size)
                raise_worker_error()
            if seen != entry.size:
                raise CreateError(
                    f"{source.name}/{entry.path_str}: got {seen} of its announced "
                    f"{entry.size} bytes (did it change while hashing?)"
                )
            if v2_worker:
                v2_worker.put(v2.end, index)  # type: ignore[union-attr]
            if check_worker:
                check_worker.put(check.end, entry.path_str)  # type: ignore[union-attr]
    finally:
        for worker in workers:
            worker.stop()
    raise_worker_error()
    if check and check.mismatches:
        raise CreateError(
            f"{source.name}: SHA-256 differs from the expected digest for "
            + ", ".join(check.mismatches)
        )
    return StreamHashes(v1.finish() if v1 else None, v2.files if v2 else {})
