"""BitTorrent out of the registry and back: ``modelreg get`` (into the Hugging Face cache) and ``modelreg seed``.

libtorrent is the engine; it is imported only by the modules that run a session (``session.lt``), so the
other commands never pay for it.
"""
