"""``GET /api/v1/container-images``: the image catalog, with which images exist locally.

The catalog is a YAML file (``images/catalog.yaml`` in the repository) with one entry per image:
``name``, ``image``, ``description``, ``runtime`` (default ``docker``) and an optional
``default``. It is read on the first request and kept. Each Docker entry is returned in the
incumbent's shape (``ref``, ``label``, ``description``, ``default``) plus ``present``: whether the
image exists on the Docker host, from one read-only runtime call. ``present`` is null when the
app has no runtime or the runtime cannot be reached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.routing import method_route
from agentic_sandbox.crds.yaml_reader import read_yaml_documents
from agentic_sandbox.errors import RuntimeFailure, SandboxError
from agentic_sandbox.runtimes.base import Runtime

logger = logging.getLogger(__name__)

PATH = "/api/v1/container-images"
# The catalog in a source checkout; a package installed elsewhere has none.
DEFAULT_CATALOG_PATH = Path(__file__).resolve().parents[2] / "images" / "catalog.yaml"


@dataclass(frozen=True)
class CatalogImage:
    name: str
    image: str
    description: str
    runtime: str
    default: bool


def _entry(raw: object, index: int) -> CatalogImage:
    if not isinstance(raw, dict):
        raise ValueError(f"images[{index}] is not a mapping")
    for key in ("name", "image"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"images[{index}].{key} is missing or not a string")
    return CatalogImage(
        name=raw["name"],
        image=raw["image"],
        description=str(raw.get("description") or "").strip(),
        runtime=str(raw.get("runtime") or "docker"),
        default=raw.get("default") is True,
    )


def parse_catalog(text: str, *, source: str) -> list[CatalogImage]:
    """Parse catalog text. Raises ManifestError for bad YAML and ValueError for a bad entry."""
    documents = [doc for doc in read_yaml_documents(text, source=source) if doc.data is not None]
    if not documents:
        return []
    data = documents[0].data
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the top level has no 'images' list")
    return [_entry(raw, index) for index, raw in enumerate(entries)]


class ImageCatalog:
    """The catalog file, read once on first use. A missing or invalid file reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._images: list[CatalogImage] | None = None

    def images(self) -> list[CatalogImage]:
        if self._images is None:
            self._images = self._load()
        return self._images

    def _load(self) -> list[CatalogImage]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as error:
            logger.warning(
                "image catalog not readable; serving an empty list path=%s error=%s",
                self.path,
                error.strerror or error,
            )
            return []
        try:
            return parse_catalog(text, source=str(self.path))
        except (SandboxError, ValueError) as error:
            logger.error(
                "image catalog invalid; serving an empty list path=%s error=%s", self.path, error
            )
            return []


class ImageRoutes:
    """Handler of the catalog route; ``runtime`` None leaves image presence unknown."""

    def __init__(self, catalog: ImageCatalog, runtime: Runtime | None) -> None:
        self._catalog = catalog
        self._runtime = runtime
        self._runtime_failing = False

    def routes(self) -> list[Route]:
        return [method_route(PATH, {"GET": self.list_images})]

    async def list_images(self, request: Request) -> JSONResponse:
        images = [image for image in self._catalog.images() if image.runtime == "docker"]
        present = await self._present([image.image for image in images])
        body: list[dict[str, Any]] = [
            {
                "ref": image.image,
                "label": image.name,
                "description": image.description,
                "default": image.default,
                "runtime": image.runtime,
                "present": present.get(image.image),
            }
            for image in images
        ]
        return JSONResponse({"images": body})

    async def _present(self, refs: list[str]) -> dict[str, bool]:
        if self._runtime is None or not refs:
            return {}
        try:
            present = await self._runtime.image_present(refs)
        except RuntimeFailure as error:
            # Logged once per outage; the catalog is still served, with presence unknown.
            if not self._runtime_failing:
                logger.warning("image presence unknown; runtime call failed error=%s", error)
            self._runtime_failing = True
            return {}
        self._runtime_failing = False
        return present
