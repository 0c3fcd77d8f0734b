"""Hugging Face access: one hub client (endpoint, token, retries), the streaming source, metadata types.

Imports only ``modelreg.torrent`` below it.
"""
