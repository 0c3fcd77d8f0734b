"""The access tokens the gateway's Hugging Face paths accept (``--require-token --tokens-file FILE``).

The file holds one token per line; blank lines and lines starting with ``#`` are skipped. It is read
again whenever its size or modification time changes, so tokens are added and revoked without a
restart. A file that disappears or cannot be read later on accepts no token at all (fail closed) until
it is readable again.
"""

from __future__ import annotations

import hmac
import os
import time
from pathlib import Path

from modelreg.errors import ConfigError

#: How often (seconds) the file's size and modification time are looked at.
RECHECK = 1.0
_MAX_BYTES = 1 << 20


class TokenFile:
    """The tokens listed in one file, reread on change."""

    def __init__(self, path: str | Path, recheck: float = RECHECK):
        """The tokens listed in ``path`` (one a line, ``#`` comments), read again whenever the file changes.

        Raises:
            ConfigError: the file cannot be read at start (missing, too large, not UTF-8).
        """
        self.path = Path(path)
        self.recheck = recheck
        self._tokens: tuple[bytes, ...] = ()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.error: str | None = None
        self._reload()
        if self.error:
            raise ConfigError(f"--tokens-file {self.path}: {self.error}")

    def accepts(self, token: str | None) -> bool:
        """Whether ``token`` is listed (compared in constant time per listed token)."""
        now = time.monotonic()
        if now - self._checked >= self.recheck:
            self._checked = now
            self._reload()
        if not token:
            return False
        wanted = token.encode("utf-8", "surrogateescape")
        found = False
        for listed in self._tokens:
            found |= hmac.compare_digest(listed, wanted)
        return found

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return
            if st.st_size > _MAX_BYTES:
                raise ValueError(f"larger than {_MAX_BYTES} bytes")
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self._tokens, self._stamp = (), None
            self.error = f"cannot read the tokens ({getattr(exc, 'strerror', None) or exc}); no token is accepted"
            return
        lines = (line.strip() for line in text.splitlines())
        self._tokens = tuple(line.encode("utf-8") for line in lines if line and not line.startswith("#"))
        self._stamp, self.error = stamp, None
