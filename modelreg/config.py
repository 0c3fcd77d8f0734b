"""The site configuration, ``modelreg.toml``: every option typed, validated, with errors a user can act on."""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelreg.errors import ConfigError

CONFIG_FILE = "modelreg.toml"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class Config:
    """Site options. Paths are relative to the folder that holds the config file."""

    title: str = "Model Registry"
    description: str = "Open model weights over BitTorrent, with Hugging Face as the web seed."
    base_url: str = "/"
    site_url: str = ""
    registry: str = "registry"
    out: str = "site"
    theme_dir: str = "templates"  # files here replace the packaged theme's files of the same name
    trackers: tuple[str, ...] = ()
    webseeds: tuple[str, ...] = ()
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    #: Links to pages end in ``/`` (served by a web server); false: in ``/index.html`` (browsable from disk).
    use_directory_urls: bool = True
    #: URL prefix where the registry's .torrent files are already served (by their path in the registry):
    #: pages and magnets (xs=) link there, and the site copies none.
    torrent_url: str = ""
    root: Path = field(default=Path("."), compare=False)

    def path(self, value: str) -> Path:
        """A path option resolved against the config file's folder."""
        return (self.root / value).resolve()

    def replace(self, **changes: Any) -> Config:
        """A copy with some options changed, validated like the file."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "root"}
        values.update({k: v for k, v in changes.items() if v is not None})
        return _validated(values, self.root, "command line")


def load_config(path: str | Path | None = None) -> Config:
    """Load ``modelreg.toml`` (or the given file); a missing default file means all defaults."""
    explicit = path is not None
    path = Path(path) if explicit else Path(CONFIG_FILE)
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: no such configuration file")
        return Config(root=Path.cwd())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return _validated(data, path.resolve().parent, str(path))


def _validated(data: dict[str, Any], root: Path, where: str) -> Config:
    known = {f.name: f for f in fields(Config) if f.name != "root"}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"{where}: unknown option '{key}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        values[key] = _CHECKS[key](key, value, where)
    return Config(root=root, **values)


def _text(key: str, value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string, not {type(value).__name__}")
    return value


#: The URL schemes a torrent's trackers may have (BEP 3 http(s), BEP 15 udp, WebTorrent wss), and its web seeds'.
TRACKER_SCHEMES = ("http", "https", "udp", "wss")
WEBSEED_SCHEMES = ("http", "https")


def check_url(value: str, what: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """``value`` as given, if it is an absolute URL of one of ``schemes`` with a host (and a port in range):
    the one URL rule of the config, the command-line options and ``HF_ENDPOINT``.

    Raises:
        ConfigError: naming ``what`` and the value.
    """
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:  # 'http://[::1' and the like
        parts = urlsplit("")
    if parts.scheme not in schemes or not parts.hostname:
        words = "http(s)" if schemes == ("http", "https") else "/".join(schemes)
        raise ConfigError(f"{what} must be an absolute {words} URL, not {value!r}")
    return value


def _url(key: str, value: Any, where: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    return check_url(_text(key, value, where), f"{where}: '{key}'", schemes)


def _urls(schemes: tuple[str, ...]):
    def check(key: str, value: Any, where: str) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: '{key}' must be a list of URLs")
        return tuple(_url(f"{key}[{i}]", v, where, schemes) for i, v in enumerate(value))

    return check


#: One segment of a base path: RFC 3986 path characters (percent-escapes included), nothing a browser
#: would drop or turn into a slash (control characters, spaces, backslashes).
_SEGMENT = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+"
_BASE_PATH = re.compile(rf"/(?:{_SEGMENT}/)*")


def _base_url(key: str, value: Any, where: str) -> str:
    """A path starting with exactly one ``/``: ``//host/`` or ``/\\host/`` would make every relative URL of
    the 404 page lead to another host."""
    value = _text(key, value, where)
    path = value if value.endswith("/") else value + "/"
    if not _BASE_PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise ConfigError(f"{where}: '{key}' must be a path such as '/' or '/mirror/' (one leading '/', "
                          f"no '//', no backslash, no spaces), not {value!r}")
    return path


def _site_url(key: str, value: Any, where: str) -> str:
    return _url(key, value, where).rstrip("/") if value else ""


_CHECKS = {
    "title": _text,
    "description": _text,
    "base_url": _base_url,
    "site_url": _site_url,
    "registry": _text,
    "out": _text,
    "theme_dir": _text,
    "trackers": _urls(TRACKER_SCHEMES),
    "webseeds": _urls(WEBSEED_SCHEMES),
    "hf_endpoint": lambda k, v, w: _url(k, v, w).rstrip("/"),
    "use_directory_urls": lambda k, v, w: _bool(k, v, w),
    "torrent_url": lambda k, v, w: _url(k, v, w).rstrip("/") + "/" if v else "",
}


def _bool(key: str, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true or false, not {value!r}")
    return value
