"""A local HTTP server for the dry run's manifest files: a thread, on 127.0.0.1, any free port.

    with serve(folder) as base_url:    # e.g. http://127.0.0.1:40123
        ...                            # GET <base_url>/<host>/<path> -> <folder>/<host>/<path>

The download stage fetches from it with its real code (urllib, streaming, sha256 check); only the
host differs from the pinned URLs. Set NO_PROXY for 127.0.0.1 in the stages' environment, or a
configured proxy would get the requests.
"""
from __future__ import annotations

import contextlib
import http.server
import threading
from functools import partial
from pathlib import Path
from typing import Iterator


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files under its directory; logs nothing per request (dvc repro's output stays readable)."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, name="dryrun-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
