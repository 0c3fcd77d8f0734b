"""The torrent core: bencode, metainfo, magnet links, file layout, hashing, create and verify.

The lowest layer: it imports nothing of modelreg's but the modules below every layer
(``errors``, ``fsutil``, ``paths``).
"""
