"""modelreg: distribute open model weights over BitTorrent, with Hugging Face as the web seed."""

__version__ = "0.1.0"
