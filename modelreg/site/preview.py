"""Preview the site: build it, serve it on 127.0.0.1, rebuild and reload the browser when a source changes.

Sources are the registry folder, the templates and the configuration file. A rebuild that fails prints
the error and keeps serving the last good site. The site is served under its ``base_url`` (other paths
redirect there), so a preview of ``/mirror/`` checks the links it will have.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Callable

from modelreg.site.build import BuildReport, build_site, site_path
from modelreg.config import Config
from modelreg.errors import ModelregError, ServeError


class Preview:
    """A site being previewed: how to get its config, and how to rebuild it."""

    def __init__(self, load_config: Callable[[], Config], config_file: Path | None = None):
        self.load_config = load_config
        self.config_file = config_file
        self.config = load_config()

    def rebuild(self, *_: object) -> BuildReport | None:
        """Build again with the current config; on an error, say so and keep the previous site."""
        try:
            self.config = self.load_config()
            report = build_site(self.config)
        except ModelregError as exc:
            print(f"error: {exc} (still serving the previous build)", file=sys.stderr, flush=True)
            return None
        print(report.summary(), file=sys.stderr if report.errors else sys.stdout, flush=True)
        return report

    def sources(self) -> list[Path]:
        paths = [self.config.path(self.config.registry), self.config.path(self.config.theme_dir)]
        if self.config_file is not None:
            paths.append(self.config_file)
        return paths


def serve(preview: Preview, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build, then serve until interrupted (Ctrl-C), rebuilding on every change of a source."""
    from livereload import Server  # imported here: only this command needs tornado
    from livereload.watcher import Watcher
    from tornado import web

    class SourceWatcher(Watcher):
        """livereload's polling watcher, but a file that appears counts as a change even when its
        modification time is older than the server (torrents copied with ``cp -p`` or ``rsync -a``)."""

        primed = False

        def is_file_changed(self, path, ignore=None):
            new = path not in self._task_mtimes
            return super().is_file_changed(path, ignore) or (new and self.primed and path in self._new_mtimes)

        def examine(self):
            scans = not self._changes  # a queued change is returned without scanning
            result = super().examine()
            self.primed = self.primed or scans
            return result

    class SiteServer(Server):
        """livereload's server with the site mounted at its base path."""

        def get_web_handlers(self, script):
            base = preview.config.base_url
            handlers = [(f"{re.escape(base)}(.*)", self.SFH, {"path": self.root, "default_filename": "index.html"})]
            if base != "/":
                handlers.append((r"/.*", web.RedirectHandler, {"url": base}))
            return handlers

    if preview.rebuild() is None and not site_path(preview.config).is_dir():
        raise ServeError("the first build failed, so there is nothing to serve")
    server = SiteServer(watcher=SourceWatcher())
    for path in preview.sources():
        server.watch(str(path), preview.rebuild, delay=0.2)
    server.watcher.examine()  # the first scan records what exists; changes from now on trigger rebuilds
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    print(f"serving http://{host}:{port}{preview.config.base_url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve(host=host, port=port, root=str(site_path(preview.config)), restart_delay=0)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
