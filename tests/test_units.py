"""One size parser and one UTC timestamp formatter (modelreg.units) for every command and file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from modelreg.cli import main
from modelreg.errors import ConfigError
from modelreg.units import parse_size, utc_timestamp


@pytest.mark.parametrize("text, size", [
    ("4194304", 4194304), ("4M", 4 << 20), ("4m", 4 << 20), ("16KiB", 16 << 10), ("16kb", 16 << 10),
    ("2T", 2 << 40), ("1P", 1 << 50), ("1.5G", 3 << 29), (" 500 M ", 500 << 20), ("7b", 7),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "4X", "-1M", "4 M B", "M", "1e6", "4M\n5"])
def test_bad_sizes_name_the_text(text):
    with pytest.raises(ConfigError, match="must be a number"):
        parse_size(text)


def test_every_command_reads_sizes_alike(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 100)
    assert main(["create", "-q", str(folder), "-o", str(tmp_path / "m.torrent"), "--piece-length", "32KiB"]) == 0
    assert main(["create", "-q", str(folder), "--piece-length", "lots"]) == 2
    assert main(["webseed", "--max-cache-size", "lots"]) == 2
    err = capsys.readouterr().err
    assert err.count("size 'lots' must be a number") == 2


def test_timestamps():
    assert utc_timestamp(datetime(2026, 11, 29, 20, 1, 2, 999_999, tzinfo=UTC)) == "2026-11-29T20:01:02Z"
    assert utc_timestamp(datetime(2026, 11, 29, 22, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == \
        "2026-11-29T20:01:02Z"
    assert utc_timestamp(datetime(2026, 11, 29, 20, 1, 2)) == "2026-11-29T20:01:02Z"  # naive: read as UTC
    assert utc_timestamp(datetime(1, 1, 1)) == "0001-01-01T00:00:00Z"  # four-digit years, unlike %Y
    assert utc_timestamp(0) == "1970-01-01T00:00:00Z"
    now = datetime.strptime(utc_timestamp(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - now).total_seconds()) < 60
