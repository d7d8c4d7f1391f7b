"""The operator dashboard: static files served at ``/`` and ``/dashboard/{name}``.

The files live in the package directory ``api/dashboard/`` and are plain HTML, CSS and ES
modules, so nothing is built at run time. They hold no data: the page requests the API token
from the user and sends it in the ``Authorization`` header of every API call. So these routes
need no token, and ``public_paths`` lists exactly the paths of the files, for the bearer
middleware.

The files are read once, when the routes are built. Each response carries a strong ``ETag`` and
``Cache-Control: no-cache``, so a browser revalidates and gets 304 while a file is unchanged.
The Content-Security-Policy allows scripts, styles and connections from the same origin only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route

DASHBOARD_DIR = Path(__file__).resolve().with_name("dashboard")
INDEX_PATH = "/"
ASSET_PREFIX = "/dashboard/"
ASSET_PATH = ASSET_PREFIX + "{name}"
INDEX_FILE = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def load_files(directory: Path) -> dict[str, StaticFile]:
    """Read the files of ``directory`` whose suffix has a media type, keyed by file name."""
    files = {}
    for path in sorted(directory.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.name] = StaticFile(body=body, media_type=media_type, etag=etag)
    return files


class DashboardRoutes:
    """Handlers of the dashboard's page and its files, read from ``directory``."""

    def __init__(self, directory: Path = DASHBOARD_DIR) -> None:
        self._files = load_files(directory)
        if INDEX_FILE not in self._files:
            raise ValueError(f"the dashboard directory {directory} has no {INDEX_FILE}")

    @property
    def public_paths(self) -> frozenset[str]:
        """The paths served without a token: the page and each of its files."""
        return frozenset({INDEX_PATH, *(ASSET_PREFIX + name for name in self._files)})

    def routes(self) -> list[Route]:
        return [
            method_route(INDEX_PATH, {"GET": self.index}),
            method_route(ASSET_PATH, {"GET": self.asset}),
        ]

    async def index(self, request: Request) -> Response:
        return self._respond(request, self._files[INDEX_FILE])

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        found = self._files.get(name)
        if found is None:
            raise ApiProblem(
                404,
                f"the dashboard has no file {name!r}; open the dashboard at {INDEX_PATH}",
                kind="NotFound",
            )
        return self._respond(request, found)

    def _respond(self, request: Request, file: StaticFile) -> Response:
        headers = {
            "ETag": file.etag,
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if request.headers.get("if-none-match") == file.etag:
            return Response(status_code=304, headers=headers)
        return Response(file.body, media_type=file.media_type, headers=headers)
