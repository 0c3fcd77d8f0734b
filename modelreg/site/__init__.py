"""The static site: records and paths, templates, search index, feeds, and reuse of unchanged pages."""

from modelreg.site.parsecache import ParseCache
from modelreg.site.render import RenderStats, render_site
from modelreg.site.reuse import Reuse

__all__ = ["ParseCache", "RenderStats", "Reuse", "render_site"]
