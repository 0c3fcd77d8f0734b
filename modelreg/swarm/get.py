"""``modelreg get``: download a registry torrent with libtorrent and place its files in the Hugging Face cache.

The torrent is downloaded into ``<cache>/models--Org--Name/.modelreg-incomplete/<infohash>/`` (inside the
cache, so the files can move into ``blobs/`` by hard link or rename: never a second copy). libtorrent checks
what is already there when the torrent is added, so an interrupted run resumes from its verified pieces.
Files the cache already holds are linked in first, for the same reason. Only when every selected file is
complete does the placing start: each file is hashed (SHA-256 and git blob SHA-1, one read), compared with
the registry's LFS SHA-256 where it has one, and only then linked to ``blobs/<etag>`` and
``snapshots/<commit>/<path>``. A failed run leaves the snapshot as it was; the partial download stays in
the incomplete folder for the next run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from modelreg.errors import FileCheckError, StalledError, SwarmError
from modelreg.swarm import hfcache
from modelreg.swarm.hasher import Hasher
from modelreg.swarm.monitor import Bar, Traffic, human_bytes
from modelreg.swarm.resolve import Entry
from modelreg.swarm.session import flush_writes, lt, make_session, torrent_params
from modelreg.torrent.metainfo import FileEntry, Torrent

#: How often the loop looks at the torrent, and how often it asks again for each ``--peer``.
POLL = 0.1
RECONNECT = 5.0


@dataclass(frozen=True)
class GetOptions:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    peers: tuple[tuple[str, int], ...] = ()
    seed_time: float = 0.0
    stall_timeout: float = 120.0
    port: int = 0
    dht: bool = True
    lsd: bool = True
    quiet: bool = False


@dataclass
class GetReport:
    """What a ``get`` did."""

    repo_id: str
    commit: str
    snapshot: Path
    files: list[str] = field(default_factory=list)
    size: int = 0
    downloaded: int = 0
    webseed_bytes: int = 0
    peer_bytes: int = 0
    hash_failures: int = 0
    seconds: float = 0.0
    uploaded: int = 0

    def summary(self) -> str:
        rate = self.downloaded / self.seconds if self.seconds else 0
        got = self.webseed_bytes + self.peer_bytes
        share = f", {self.webseed_bytes / got:.0%} from web seeds" if got else ""
        return (f"{self.repo_id}@{self.commit[:12]}: {len(self.files)} file(s), {human_bytes(self.size)} in "
                f"{self.snapshot}; downloaded {human_bytes(self.downloaded)} in {self.seconds:.1f} s "
                f"({human_bytes(rate)}/s{share})")


def selected(path: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Whether a repository path is wanted: it matches an ``--include`` glob (or there is none) and no
    ``--exclude`` glob. Globs match the whole path, ``*`` crossing folders, like ``huggingface_hub``'s patterns."""
    def match(globs: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(path, g.rstrip("/") + "/*") for g in globs)

    return (not include or match(include)) and not match(exclude)


def repo_path(torrent: Torrent, f: FileEntry) -> str:
    """The file's path in the repository (the torrent's folder name is the repository's root)."""
    return f.path_str


def get(entry: Entry, cache: Path, options: GetOptions, log: TextIO = sys.stdout) -> GetReport:
    """Download ``entry``'s selected files and place them in the HF cache ``cache``.

    Raises:
        SwarmError: no commit known, nothing selected, libtorrent fails (disk full, unreadable torrent...).
        StalledError: no verified piece for ``options.stall_timeout`` seconds (names the files left).
        FileCheckError: a file's SHA-256 is not the registry's, or a piece of it still fails its check on disk
            after it was downloaded again (:func:`_recheck`) (names the file; nothing is placed).
    """
    torrent = entry.torrent
    if entry.commit is None:
        raise SwarmError(f"{entry.where}: the registry does not record which commit of {entry.repo_id} this "
                         "torrent holds, and the cache's snapshot folder is named by it (pin the revision)")
    wanted = [(i, f) for i, f in enumerate(torrent.layout)
              if not f.is_pad and selected(repo_path(torrent, f), options.include, options.exclude)]
    if not wanted:
        raise SwarmError(f"no file of {entry.repo_id} matches --include/--exclude")
    for _, f in wanted:
        hfcache.check_relpath(repo_path(torrent, f))
    start = time.monotonic()
    repo = hfcache.repo_folder(cache, entry.repo_id)
    (repo / "snapshots").mkdir(parents=True, exist_ok=True)  # scan_cache_dir wants it even before a snapshot
    work = repo / hfcache.INCOMPLETE / (torrent.infohash_v1 or torrent.infohash_v2 or "torrent")[:40]
    report = GetReport(entry.repo_id, entry.commit, repo / "snapshots" / entry.commit)
    if options.seed_time <= 0 and _all_placed(repo, entry, wanted, report):
        if entry.newest:
            hfcache.write_ref(repo, entry.branch, entry.commit)
        report.seconds = time.monotonic() - start
        return report
    _link_cached(repo, entry, work, wanted)
    ses = make_session(options.port, dht=options.dht, lsd=options.lsd)
    try:
        handle = _add(ses, torrent, work, {i for i, _ in wanted})
        layout_size = sum(f.size for f in torrent.layout)  # the piece space, pad files included
        traffic = Traffic(torrent.piece_length, layout_size, torrent.webseeds)
        hasher = Hasher(handle, {i: (repo_path(torrent, f), _target(work, torrent, f), f.size) for i, f in wanted},
                        entry.lfs_sha256)
        try:
            # the download, and again for the files whose pieces fail on disk where a piece failed its
            # check (see _recheck)
            for attempt in range(RECHECKS + 1):
                _download(ses, handle, entry, wanted, options, traffic, report, hasher)
                _flush(ses, handle, entry, traffic, report, hasher)
                bad = []
                if report.hash_failures:
                    handle, bad = _recheck(ses, handle, torrent, work, wanted)
                    hasher.handle = handle
                if not bad:
                    break
                if attempt == RECHECKS:
                    raise FileCheckError(
                        f"{entry.repo_id}: {', '.join(repo_path(torrent, f) for _, f in bad)}: pieces that failed "
                        "their hash check during the download still do not check out on disk after "
                        f"{RECHECKS} more downloads; nothing was placed")
                hasher.forget([i for i, _ in bad])
            report.downloaded = handle.status().total_payload_download
            report.webseed_bytes, report.peer_bytes = traffic.settled()
            ses.remove_torrent(handle)
            placed = _check(entry, work, wanted, hasher)
        finally:
            hasher.close()
        for rel, (path, etag) in placed.items():
            hfcache.place_blob(repo, etag, path)
            hfcache.link_snapshot(repo, entry.commit, rel, etag)
            report.files.append(rel)
            report.size += path.stat().st_size
        if entry.newest:
            hfcache.write_ref(repo, entry.branch, entry.commit)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            (repo / hfcache.INCOMPLETE).rmdir()
        report.seconds = time.monotonic() - start
        if options.seed_time > 0:
            from modelreg.swarm.seed import seed_for

            report.uploaded = seed_for(ses, entry, repo, options.seed_time, options.peers, log)
    finally:
        del ses
    return report


def _target(work: Path, torrent: Torrent, f: FileEntry) -> Path:
    return work.joinpath(*f.path) if torrent.single_file else work.joinpath(torrent.name, *f.path)


def _all_placed(repo: Path, entry: Entry, wanted: list[tuple[int, FileEntry]], report: GetReport) -> bool:
    """Whether the snapshot already holds every wanted file (at its size); fills the report if so."""
    for _, f in wanted:
        blob = hfcache.snapshot_file(repo, entry.commit or "", repo_path(entry.torrent, f))
        if blob is None or blob.stat().st_size != f.size:
            return False
    report.files = [repo_path(entry.torrent, f) for _, f in wanted]
    report.size = sum(f.size for _, f in wanted)
    return True


def _link_cached(repo: Path, entry: Entry, work: Path, wanted: list[tuple[int, FileEntry]]) -> None:
    """Hard-link files the cache already holds into the download folder, so libtorrent finds their pieces."""
    for _, f in wanted:
        blob = hfcache.snapshot_file(repo, entry.commit or "", repo_path(entry.torrent, f))
        target = _target(work, entry.torrent, f)
        if blob is None or target.exists() or blob.stat().st_size != f.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.link(blob, target)


def _add(ses: Any, torrent: Torrent, work: Path, wanted: set[int], flags: Any = 0) -> Any:
    lib = lt()
    work.mkdir(parents=True, exist_ok=True)
    atp = torrent_params(torrent.raw, str(work))
    atp.file_priorities = [4 if i in wanted else 0 for i in range(len(torrent.layout))]
    atp.flags &= ~lib.torrent_flags.auto_managed
    atp.flags &= ~lib.torrent_flags.paused
    atp.flags |= flags
    return ses.add_torrent(atp)


def _download(ses: Any, handle: Any, entry: Entry, wanted: list[tuple[int, FileEntry]], options: GetOptions,
              traffic: Traffic, report: GetReport, hasher: Hasher) -> None:
    lib = lt()
    checking = (lib.torrent_status.checking_files, lib.torrent_status.checking_resume_data)
    bar = Bar(sum(f.size for _, f in wanted), entry.repo_id, options.quiet)
    best, last_progress, last_connect = -1, time.monotonic(), 0.0
    try:
        while True:
            now = time.monotonic()
            if options.peers and now - last_connect >= RECONNECT:
                for peer in options.peers:
                    handle.connect_peer(peer)
                last_connect = now
            _take_alerts(ses, entry, traffic, report, hasher)
            st = handle.status()
            if st.errc.value():
                raise SwarmError(f"{entry.repo_id}: {st.errc.message()}")
            traffic.sample(handle.get_peer_info())
            done = st.total_wanted_done
            bar.update(done, traffic, "checking" if st.state in checking else "")
            if st.state in checking or done > best:
                best, last_progress = max(best, done), now
            if st.total_wanted and done >= st.total_wanted and st.state not in checking:
                return
            if now - last_progress > options.stall_timeout:
                raise StalledError(_stalled(entry, handle, wanted, options.stall_timeout, report))
            time.sleep(POLL)
    finally:
        bar.close()


def _stalled(entry: Entry, handle: Any, wanted: list[tuple[int, FileEntry]], timeout: float, report: GetReport) -> str:
    progress = handle.file_progress(flags=lt().torrent_handle.piece_granularity)
    left = [repo_path(entry.torrent, f) for i, f in wanted if progress[i] < f.size]
    shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
    bad = f" ({report.hash_failures} piece(s) failed their hash check)" if report.hash_failures else ""
    return (f"{entry.repo_id}: no source supplied a verified piece for {timeout:g} s{bad}; incomplete: {shown}. "
            "Nothing was placed in the cache; run again to resume.")


def _take_alerts(ses: Any, entry: Entry, traffic: Traffic, report: GetReport, hasher: Hasher) -> None:
    """Act on the alerts libtorrent has queued: blocks counted by source, files completed and written
    (for the hasher), pieces that failed their check counted (the files are then checked again on disk
    before anything is placed: :func:`_recheck`).

    Raises:
        SwarmError: libtorrent cannot read or write a file of the torrent.
    """
    lib = lt()
    for alert in ses.pop_alerts():
        if isinstance(alert, lib.block_finished_alert):
            traffic.block(alert)
        elif isinstance(alert, lib.block_downloading_alert):
            traffic.request(alert)
        elif isinstance(alert, lib.file_completed_alert):
            hasher.completed(alert.index)
        elif isinstance(alert, lib.cache_flushed_alert):
            hasher.flushed()
        elif isinstance(alert, lib.hash_failed_alert):
            report.hash_failures += 1
        elif isinstance(alert, (lib.file_error_alert, lib.torrent_error_alert)):
            raise SwarmError(f"{entry.repo_id}: {alert.message()}")


def _flush(ses: Any, handle: Any, entry: Entry, traffic: Traffic, report: GetReport, hasher: Hasher,
           timeout: float = 60.0) -> None:
    """Wait until libtorrent has written every wanted file (see :mod:`modelreg.swarm.hasher`: files are
    hashed only after a write fence that follows their completion).

    Raises:
        SwarmError: libtorrent did not confirm the writes within ``timeout`` seconds, or cannot write a
            file.
    """
    for index in hasher.files:
        hasher.completed(index)
    deadline = time.monotonic() + timeout
    while True:
        # alerts first, even when nothing is left to write: the last ones may still be queued (the
        # download can end between two polls), and the traffic counts and the failed pieces need them: a
        # piece that failed its check, then passed from another source within one poll, is told only here
        _take_alerts(ses, entry, traffic, report, hasher)
        if hasher.idle:
            return
        if time.monotonic() > deadline:
            raise SwarmError(f"libtorrent did not finish writing {handle.status().name} within {timeout:g} s")
        ses.wait_for_alert(100)


def _recheck(ses: Any, handle: Any, torrent: Torrent, work: Path,
             wanted: list[tuple[int, FileEntry]]) -> tuple[Any, list[tuple[int, FileEntry]]]:
    """Check every wanted piece again from disk, after a download in which a piece failed its hash check:
    the torrent is written out, taken out of the session and added again (libtorrent checks the files on
    disk when a torrent is added). Returns the new handle and the wanted files with a piece that fails
    (libtorrent then downloads it again).

    The blocks of a piece that fails are written before its check fails, and those downloaded again are
    written over them, by libtorrent's disk threads: once, in a test under load, a file so downloaded was
    left with the failed copy's byte while every piece had passed. A file whose SHA-256 the registry lists
    is checked against it too (:func:`_check`); this covers the others, and costs a read of the files only
    where a piece failed.

    Two things make this a check of the disk. The torrent is added anew rather than ``force_recheck``-ed:
    libtorrent 2.1's disk cache answers the hash of a piece it still holds with the one it computed from
    the downloaded blocks (``disk_cache::try_hash_piece``), while a new torrent's storage holds nothing.
    And it is added with ``stop_when_ready``, so libtorrent pauses it as the check ends, before its alert:
    a piece found bad is not downloaded again (milliseconds from a local seed) before the progress is
    read, which under load once let a bad piece pass for a good one.

    Raises:
        SwarmError: libtorrent fails (the files cannot be read or written).
    """
    lib = lt()
    handle.pause()  # no block comes in after the fence
    flush_writes(handle)
    _wait_for(ses, handle, lib.cache_flushed_alert)
    ses.remove_torrent(handle)
    _wait_for(ses, None, lib.torrent_removed_alert)
    handle = _add(ses, torrent, work, {i for i, _ in wanted}, lib.torrent_flags.stop_when_ready)
    _wait_for(ses, handle, lib.torrent_checked_alert)
    progress = handle.file_progress(flags=lib.torrent_handle.piece_granularity)
    handle.resume()
    return handle, [(i, f) for i, f in wanted if progress[i] < f.size]


def _wait_for(ses: Any, handle: Any, kind: type, timeout: float = 600.0) -> None:
    """Wait for libtorrent's next alert of type ``kind`` (the other alerts queued meanwhile are dropped).

    Raises:
        SwarmError: the torrent (``handle``, unless None) is in error, or no such alert came within
            ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not any(isinstance(alert, kind) for alert in ses.pop_alerts()):
        if handle is not None and handle.status().errc.value():
            raise SwarmError(f"{handle.status().name}: {handle.status().errc.message()}")
        if time.monotonic() > deadline:
            raise SwarmError(f"libtorrent did not report {kind.__name__} within {timeout:g} s")
        ses.wait_for_alert(int(POLL * 1000))


#: How many times the files with a piece that fails its check on disk are downloaded again (:func:`_recheck`).
RECHECKS = 2


def _check(entry: Entry, work: Path, wanted: list[tuple[int, FileEntry]], hasher: Hasher) -> dict[str, tuple[Path, str]]:
    """Hash every downloaded file and name its blob; nothing is placed unless every file checks out.

    Raises:
        FileCheckError: SHA-256 differs from the registry's, or a file is missing or of the wrong size.
    """
    paths = {repo_path(entry.torrent, f): (_target(work, entry.torrent, f), f.size) for _, f in wanted}
    for rel, (path, size) in paths.items():
        if not path.is_file() or path.stat().st_size != size:
            raise FileCheckError(f"{entry.repo_id}: {rel}: the downloaded file is missing or not {size} bytes")
    etags = hasher.etags()
    bad = [rel for rel, etag in etags.items() if rel in entry.lfs_sha256 and entry.lfs_sha256[rel] != etag]
    if bad:
        for rel in bad:  # the torrent's pieces verified, yet the file is not HF's: never keep it
            paths[rel][0].unlink(missing_ok=True)
        raise FileCheckError(f"{entry.repo_id}: {', '.join(bad)}: SHA-256 differs from the one the registry lists "
                             "for this file; nothing was placed")
    return {rel: (paths[rel][0], etag) for rel, etag in etags.items()}
