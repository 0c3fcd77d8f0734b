"""The static site: records and paths, templates, search index, feeds, and reuse of unchanged pages."""

from .parsecache import ParseCache
from .render import RenderStats, render_site
from .reuse import Reuse

__all__ = ["ParseCache", "RenderStats", "Reuse", "render_site"]
