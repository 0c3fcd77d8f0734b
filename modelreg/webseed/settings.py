"""The gateway's options, typed and checked (the ``modelreg webseed`` command line fills them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelreg.config import DEFAULT_HF_ENDPOINT
from modelreg.errors import ConfigError
from modelreg.hf.retry import RetryPolicy
from modelreg.webseed.upstream import GATEWAY_RETRY

MODES = ("redirect", "mirror")


@dataclass(frozen=True)
class GatewaySettings:
    """How the gateway answers and what it protects itself with."""

    mode: str = "redirect"
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    redirect_hosts: tuple[str, ...] = ()
    cache_dir: Path | None = None
    max_cache_size: int | None = None
    #: Requests answered at once, in all and per client address (beyond: 503 and 429).
    max_connections: int = 1024
    max_per_client: int = 64
    #: Seconds a client may take to accept the next step (1 MiB) of its answer before it is dropped.
    send_timeout: float = 30.0
    #: Connections open at once; None: derived from RLIMIT_NOFILE (see webseed.connections).
    max_open_connections: int | None = None
    retry: RetryPolicy = GATEWAY_RETRY
    upstream_timeout: float = 30.0
    token: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "mirror" and self.cache_dir is None:
            raise ConfigError("--mode mirror needs a --cache DIR to keep verified pieces in")
        if self.max_connections < 1 or self.max_per_client < 1:
            raise ConfigError("connection limits must be at least 1")
        if not self.send_timeout > 0:
            raise ConfigError("--send-timeout must be a positive number of seconds")

