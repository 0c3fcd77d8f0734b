"""The web-seed gateway: BEP 19 web seeds for registry torrents, backed by Hugging Face.

A BitTorrent client asks ``/v1/<org>/<name>/<revision>/<torrent name>/<path>``; the gateway checks the
request against the registry's torrents and either redirects the client to the right HF file
(``redirect`` mode) or serves verified bytes from its own cache (``mirror`` mode). Modules:

- :mod:`.routes`: what is served and what a URL names; :mod:`.ranges`: ``Range`` headers;
- :mod:`.hosts`: where redirects may point; :mod:`.upstream`: the HF client (CDN URLs; retries per
  :mod:`modelreg.hf.retry`); :mod:`modelreg.torrent.pieces`: piece geometry and hash checks;
- :mod:`.cache`: the on-disk piece cache;
- :mod:`.fetcher`: coalesced, verified downloads into the cache; :mod:`.app`: the aiohttp app;
- :mod:`.metrics` and :mod:`.accesslog`: ``/metrics`` and the JSON access log;
- :mod:`.hfapi` (with :mod:`.hffiles`, :mod:`.tokens`): Hugging Face's own URLs in mirror mode.
"""

from modelreg.webseed.app import Gateway, make_runner
from modelreg.webseed.routes import Served, ServeSet
from modelreg.webseed.settings import GatewaySettings

__all__ = ["Gateway", "GatewaySettings", "ServeSet", "Served", "make_runner"]
