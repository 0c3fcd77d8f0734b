"""A byte-counting progress bar on stderr (tqdm) for long hashing jobs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def byte_progress(total: int, description: str, *, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """Yield a callback taking a byte count; it draws throughput and ETA on stderr.

    The bar is off with ``quiet`` or when stderr is not a terminal; the callback
    then does nothing.
    """
    if quiet or not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
              dynamic_ncols=True, file=sys.stderr, leave=False) as bar:
        yield bar.update
