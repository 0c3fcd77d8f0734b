"""Where the gateway may send a client (redirect mode) or itself (mirror mode): no open redirect.

Hugging Face answers an LFS file's ``resolve`` URL with a redirect to a signed CDN URL. The gateway
forwards such a ``Location`` only when its host is on an allow-list:

* the configured hub endpoint itself (same host and port);
* for the public hub (``huggingface.co`` / ``hf.co``): ``*.huggingface.co``, ``hf.co`` and ``*.hf.co``,
  which cover HF's CDNs (``cdn-lfs.hf.co``, ``cdn-lfs-us-1.hf.co``, ``cas-bridge.xethub.hf.co``...);
* every ``--redirect-host`` given (``host``, ``host:port`` or ``*.domain``).

What the hub redirects to is deliberately *not* learnt at run time: a check that trusts whatever the
upstream says would check nothing, and a mis-configured or hijacked endpoint could then bounce
clients (or the mirror's own fetches) anywhere. A refused host is named in the error so that an
operator can add it knowingly. Plain ``http`` targets are allowed only when the endpoint itself is
``http`` (a local mirror or a test hub).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from modelreg.errors import ConfigError

_PUBLIC_HUB_HOSTS = ("huggingface.co", "hf.co")
_PUBLIC_HUB_PATTERNS = ("*.huggingface.co", "hf.co", "*.hf.co", "huggingface.co")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class RedirectPolicy:
    """The hosts (``host``, ``host:port``, ``*.domain``) and schemes a redirect may point to."""

    patterns: tuple[str, ...]
    schemes: tuple[str, ...] = ("https",)

    @classmethod
    def for_endpoint(cls, endpoint: str, extra: tuple[str, ...] = ()) -> RedirectPolicy:
        """The redirect targets allowed for ``endpoint``: itself, HF's hosts for the public hub, and ``extra``.

        Raises:
            ConfigError: ``endpoint`` is not an http(s) URL, or an ``extra`` pattern is malformed.
        """
        parts = urlsplit(endpoint)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"the hub endpoint must be an http(s) URL, not {endpoint!r}")
        host = parts.hostname.lower()
        patterns = [f"{host}:{parts.port}" if parts.port else host]
        if host in _PUBLIC_HUB_HOSTS:
            patterns += _PUBLIC_HUB_PATTERNS
        for pattern in extra:
            patterns.append(_checked(pattern))
        schemes = ("https", "http") if parts.scheme == "http" else ("https",)
        return cls(tuple(dict.fromkeys(patterns)), schemes)

    def allows(self, url: str) -> bool:
        """Whether ``url`` is an absolute URL on an allowed scheme and host."""
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme not in self.schemes or not host or parts.username or parts.password:
            return False
        return any(_matches(p, host, port) for p in self.patterns)


def _checked(pattern: str) -> str:
    pattern = pattern.strip().lower()
    host = pattern.rsplit(":", 1)[0] if pattern.count(":") == 1 else pattern
    if (
        not host
        or "/" in pattern
        or "*" in host.removeprefix("*.")
        or (pattern.count(":") == 1 and not pattern.rsplit(":", 1)[1].isdigit())
    ):
        raise ConfigError(f"--redirect-host {pattern!r} must look like 'host', 'host:port' or '*.domain'")
    return pattern


def _matches(pattern: str, host: str, port: int | None) -> bool:
    if pattern.count(":") == 1:
        pattern, want_port = pattern.rsplit(":", 1)
        if port != int(want_port):
            return False
    elif port not in (80, 443):
        return False
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return host == pattern
