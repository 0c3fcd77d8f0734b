"""Errors subclass the standard category they belong to, so callers that know nothing of modelreg catch them,
and they still come out of the CLI as one line."""

from __future__ import annotations

import pytest

from modelreg.cli import main
from modelreg.config import load_config
from modelreg.errors import (
    CacheError,
    CatalogError,
    ConfigError,
    ModelregError,
    NotRegularFileError,
    ServeError,
    TorrentError,
)
from modelreg.torrent.metainfo import Torrent
from modelreg.webseed.cache import PieceCache
from modelreg.webseed.metrics import Metrics


@pytest.mark.parametrize(("error", "category"), [
    (TorrentError, ValueError), (CatalogError, ValueError), (ConfigError, ValueError),
    (CacheError, OSError), (ServeError, OSError), (NotRegularFileError, OSError),
])
def test_each_error_is_also_its_standard_category(error, category):
    assert issubclass(error, ModelregError) and issubclass(error, category)


def test_a_bad_torrent_is_a_value_error_naming_the_file():
    with pytest.raises(ValueError, match=r"^x\.torrent: "):
        Torrent.from_bytes(b"not bencode", source="x.torrent")


def test_a_bad_config_is_a_value_error_naming_the_file(tmp_path):
    config = tmp_path / "modelreg.toml"
    config.write_text("titel = 'typo'\n")
    with pytest.raises(ValueError, match="titel"):
        load_config(config)


def test_a_cache_folder_that_cannot_be_made_is_an_os_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(OSError, match="cannot create the cache folder"):
        PieceCache(blocker / "cache", Metrics())


def test_the_cli_still_prints_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"garbage")
    assert main(["verify", str(bad), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.torrent" in err
