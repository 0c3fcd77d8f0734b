"""The registry: catalog of torrents, cross-check against HF, metadata cache, refresh.

Imports only ``modelreg.hf`` and ``modelreg.torrent`` below it.
"""
