"""A build cache in one SQLite file, read row by row and written in one transaction.

The parse cache (:mod:`modelreg.site.parsecache`) and the reuse manifest (:mod:`modelreg.site.reuse`)
both keep their entries here, so a rebuild reads only the rows it asks for instead of loading and
rewriting a whole file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path


class CacheDB:
    """A cache in one SQLite file: read as needed, written in one transaction that :meth:`commit` ends.

    Untrusted like any cache: a file that is not SQLite, holds another ``header`` (format, Python
    version), or fails while being read, is treated as empty, and replaced by the next commit. Without
    a file (``None``) it is an empty database in memory that is never saved.
    """

    def __init__(self, file: Path | None, schema: str, header: object, readonly: bool = False):
        self.file = file
        self.header = repr(header)
        self.broken = False
        #: Read-only (a worker's view): writes and commits are ignored, the file is never replaced.
        self.readonly = readonly
        self.db = self._reader(file, schema) if readonly else self._open(file, schema)

    def _reader(self, file: Path | None, schema: str) -> sqlite3.Connection:
        """Another process's view of the committed cache (a build's worker): each query reads what is
        committed then, and holds no lock after it; a missing or foreign file is empty, never deleted."""
        if file is not None:
            try:
                db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
                found = db.execute("SELECT value FROM header").fetchone()
                if found is not None and found[0] == self.header:
                    return db
                db.close()
            except (sqlite3.Error, OSError, ValueError):
                pass
        self.file = None
        db = self._connect(None)
        db.executescript(f"CREATE TABLE header (value TEXT); {schema}")
        return db

    def _open(self, file: Path | None, schema: str) -> sqlite3.Connection:
        if file is not None:
            try:
                db = self._connect(file)
                found = db.execute("SELECT value FROM header").fetchone()
                if found is not None and found[0] == self.header:
                    db.execute("BEGIN")
                    return db
                db.close()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):  # in use by another build: without a cache
                    return self._memory(schema)
            except (sqlite3.Error, OSError):
                pass
            self._discard(file)
        try:
            db = self._connect(file)
            db.executescript(f"CREATE TABLE header (value TEXT); {schema}")
            db.execute("INSERT INTO header VALUES (?)", (self.header,))
            db.execute("BEGIN")
            return db
        except (sqlite3.Error, OSError):  # cannot write the cache folder: build without one
            return self._memory(schema)

    def _memory(self, schema: str) -> sqlite3.Connection:
        """An empty cache in memory, never saved."""
        self.file = None
        db = self._connect(None)
        db.executescript(f"CREATE TABLE header (value TEXT); {schema}")
        db.execute("BEGIN")
        return db

    @staticmethod
    def _connect(file: Path | None) -> sqlite3.Connection:
        if file is None:
            return sqlite3.connect(":memory:", isolation_level=None)
        file.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(file, isolation_level=None)
        # a cache: a crash may lose it (then the next build is a full one), never the site
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA journal_mode = TRUNCATE")
        return db

    @staticmethod
    def _discard(file: Path) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{file}{suffix}")

    def row(self, query: str, args: tuple = ()) -> tuple | None:
        """The first row of ``query``, or None (also where the file turns out damaged)."""
        if self.broken:
            return None
        try:
            return self.db.execute(query, args).fetchone()
        except sqlite3.Error:
            self.broken = True
            return None

    def rows(self, query: str, args: tuple = ()) -> Iterator[tuple]:
        """The rows of ``query`` (none once the file turns out damaged)."""
        if self.broken:
            return
        try:
            yield from self.db.execute(query, args)
        except sqlite3.Error:
            self.broken = True

    def write(self, query: str, rows: Iterable[tuple]) -> None:
        if self.broken or self.readonly:
            return
        try:
            self.db.executemany(query, rows)
        except sqlite3.Error:
            self.broken = True

    def count(self, table: str) -> int:
        found = self.row(f"SELECT count(*) FROM {table}")
        return found[0] if found else -1

    def keep_only(self, table: str, column: str, keys: Iterable[str]) -> None:
        """Delete the rows of ``table`` whose ``column`` is not one of ``keys``."""
        if self.broken:
            return
        try:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS kept (key TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM kept")
            self.db.executemany("INSERT OR IGNORE INTO kept VALUES (?)", ((k,) for k in keys))
            self.db.execute(f"DELETE FROM {table} WHERE {column} NOT IN (SELECT key FROM kept)")
            self.db.execute("DELETE FROM kept")
        except sqlite3.Error:
            self.broken = True

    def commit(self) -> None:
        """Make this run's writes the cache; a damaged file is deleted instead (the next build is full)."""
        if self.file is None or self.readonly:
            return
        if not self.broken:
            try:
                self.db.execute("COMMIT")
                self.db.execute("BEGIN")
                return
            except sqlite3.Error:
                pass
        self.close()
        self._discard(self.file)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
