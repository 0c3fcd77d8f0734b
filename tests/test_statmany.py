"""fsutil.stat_many: each path's identity, or the errno, the same whether a forked child shares the work."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from modelreg import fsutil
from modelreg.fsutil import stat_many


def _paths(tmp_path, count):
    paths = []
    for i in range(count):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * i)
        paths.append(str(path))
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "file").write_bytes(b"")
    return [*paths, str(tmp_path / "missing"), str(tmp_path / "dangling"), str(tmp_path / "file" / "below"),
            str(tmp_path / "nul\0name")]


def _expected(path):
    try:
        return fsutil.identity_of(os.stat(path))
    except OSError as exc:
        return exc.errno
    except ValueError:
        return errno.ENOENT


def test_each_path_has_its_identity_or_its_errno(tmp_path):
    paths = _paths(tmp_path, 5)
    found = stat_many(paths)
    assert found == [_expected(p) for p in paths]
    assert found[-4:] == [errno.ENOENT, errno.ENOENT, errno.ENOTDIR, errno.ENOENT]


def test_a_forked_child_gives_the_same_answer(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "STAT_SPLIT", 4)
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # (threads other tests left do not matter here)
    paths = _paths(tmp_path, 41)
    forks = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    assert stat_many(paths) == [_expected(p) for p in paths]
    assert len(forks) == 1


def test_a_child_that_dies_is_made_up_for(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "STAT_SPLIT", 4)
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # (threads other tests left do not matter here)
    paths = _paths(tmp_path, 20)
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid == 0:
            os._exit(3)  # dies before answering
        return pid

    monkeypatch.setattr(os, "fork", fork)
    assert stat_many(paths) == [_expected(p) for p in paths]


def test_a_process_with_threads_does_not_fork(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "STAT_SPLIT", 4)
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked"))
    paths = _paths(tmp_path, 10)
    assert stat_many(paths) == [_expected(p) for p in paths]
