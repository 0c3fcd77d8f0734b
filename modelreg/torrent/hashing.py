"""Streaming BitTorrent hashers and the threaded engine that feeds them.

* :class:`PieceHasher`: v1, SHA-1 of each ``piece_length`` piece of the v1 byte
  stream (files and pad files concatenated).
* :class:`FileTreeHasher`: v2 (BEP 52), per file, SHA-256 of each 16 KiB block,
  a Merkle root per piece (the piece layer) and the file's ``pieces root``.
* :func:`hash_stream` reads a :class:`~modelreg.torrent.source.Source` once, in layout
  order, and hands each chunk to one worker thread per hasher through bounded
  queues. hashlib releases the GIL on large buffers, so SHA-1 and SHA-256 run on
  different cores while memory stays bounded whatever the model's size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from modelreg.errors import CreateError
from modelreg.torrent.layout import BLOCK_SIZE, Layout, LayoutEntry
from modelreg.torrent.source import Source

ZERO_HASH = bytes(32)

#: Chunks smaller than this (typical of network reads) are gathered into one
#: buffer of at least GATHER_SIZE bytes before they go to the workers, so the
#: per-chunk cost of the queues stays small.
SMALL_CHUNK = 1024 * 1024
GATHER_SIZE = 4 * 1024 * 1024

#: Chunks waiting in each worker's queue; with 8 MiB chunks this bounds the
#: engine's buffers to about (QUEUE_DEPTH + 2) * 8 MiB.
QUEUE_DEPTH = 4

_sha1 = hashlib.sha1
_sha256 = hashlib.sha256


def merkle_root(leaves: Sequence[bytes], width: int, pad: bytes = ZERO_HASH) -> bytes:
    """Root of a SHA-256 Merkle tree over ``leaves`` padded with ``pad`` to ``width``.

    ``width`` is a power of two no smaller than ``len(leaves)``. Padding is done
    one level at a time, so a wide tree over few leaves costs only its height.
    """
    layer = list(leaves)
    while width > 1:
        if len(layer) % 2:
            layer.append(pad)
        layer = [_sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        pad = _sha256(pad + pad).digest()
        width //= 2
    return layer[0] if layer else pad


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """The v2 leaves of ``data``: SHA-256 of each 16 KiB block (the last one may be shorter)."""
    view = memoryview(data)
    sha = _sha256
    return [sha(view[i : i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)]


def pad_root(blocks: int) -> bytes:
    """Root of a tree of ``blocks`` zero leaves: the filler of a piece layer."""
    return merkle_root((), blocks)


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class PieceHasher:
    """SHA-1 of each piece of a byte stream (BitTorrent v1)."""

    def __init__(self, piece_length: int) -> None:
        self.piece_length = piece_length
        self._hash = _sha1()
        self._filled = 0
        self._digests = bytearray()
        self._zeros = memoryview(bytes(min(piece_length, 4 * 1024 * 1024)))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        size = len(view)
        pos = 0
        plen = self.piece_length
        while pos < size:
            if self._filled == 0:
                # Whole pieces straight from the buffer: one hashlib call each.
                whole = (size - pos) // plen * plen
                end = pos + whole
                while pos < end:
                    self._digests += _sha1(view[pos : pos + plen]).digest()
                    pos += plen
                if pos == size:
                    break
            take = min(plen - self._filled, size - pos)
            self._hash.update(view[pos : pos + take])
            self._filled += take
            pos += take
            if self._filled == plen:
                self._digests += self._hash.digest()
                self._hash = _sha1()
                self._filled = 0

    def zeros(self, size: int) -> None:
        """Feed ``size`` zero bytes (a pad file)."""
        while size > 0:
            take = min(size, len(self._zeros))
            self.update(self._zeros[:take])
            size -= take

    def finish(self) -> bytes:
        """The concatenated 20-byte digests, the last piece possibly short."""
        if self._filled:
            self._digests += self._hash.digest()
            self._hash = _sha1()
            self._filled = 0
        return bytes(self._digests)


@dataclass(frozen=True)
class FileHashes:
    """v2 hashes of one file: ``pieces_root`` (None when empty) and its piece layer.

    ``piece_layer`` holds the 32-byte root of each piece; a torrent lists it
    under ``piece layers`` only for files larger than one piece.
    """

    size: int
    pieces_root: bytes | None
    piece_layer: bytes

    @property
    def piece_hashes(self) -> list[bytes]:
        layer = self.piece_layer
        return [layer[i : i + 32] for i in range(0, len(layer), 32)]


class FileTreeHasher:
    """BEP 52 hashes of one file, fed in chunks of any size."""

    def __init__(self, piece_length: int, size: int) -> None:
        self.piece_length = piece_length
        self.size = size
        self._blocks_per_piece = piece_length // BLOCK_SIZE
        self._leaves: list[bytes] = []
        self._pieces: list[bytes] = []
        self._carry = bytearray()
        self._seen = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._seen += len(view)
        if self._carry:
            need = BLOCK_SIZE - len(self._carry)
            self._carry += view[:need]
            view = view[need:]
            if len(self._carry) < BLOCK_SIZE:
                return
            self._leaves.append(_sha256(self._carry).digest())
            self._carry.clear()
        full = len(view) - len(view) % BLOCK_SIZE
        self._leaves.extend(block_hashes(view[:full]))
        if full < len(view):
            self._carry += view[full:]
        self._close_pieces()

    def _close_pieces(self) -> None:
        per_piece = self._blocks_per_piece
        if len(self._leaves) < per_piece:
            return
        leaves = self._leaves
        done = len(leaves) - len(leaves) % per_piece
        for start in range(0, done, per_piece):
            self._pieces.append(merkle_root(leaves[start : start + per_piece], per_piece))
        del leaves[:done]

    def finish(self) -> FileHashes:
        if self._seen != self.size:
            raise CreateError(f"got {self._seen} bytes for a file of {self.size} bytes")
        if self.size == 0:
            return FileHashes(0, None, b"")
        if self._carry:
            self._leaves.append(_sha256(self._carry).digest())
            self._carry.clear()
        per_piece = self._blocks_per_piece
        if self.size < self.piece_length:
            # A file smaller than a piece: its tree is only as wide as it needs.
            root = merkle_root(self._leaves, next_power_of_two(len(self._leaves)))
            self._leaves = []
            return FileHashes(self.size, root, root)
        if self._leaves:
            self._pieces.append(merkle_root(self._leaves, per_piece))
            self._leaves = []
        pieces = self._pieces
        root = merkle_root(pieces, next_power_of_two(len(pieces)), pad_root(per_piece))
        return FileHashes(self.size, root, b"".join(pieces))


class Sha256Checker:
    """SHA-256 of a whole file, compared with an expected hex digest."""

    def __init__(self, expected: str) -> None:
        self.expected = expected.lower()
        self._hash = _sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def matches(self) -> bool:
        return self._hash.hexdigest() == self.expected


# --- the engine --------------------------------------------------------------


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
