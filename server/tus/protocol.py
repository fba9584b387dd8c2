"""The tus 1.0.0 protocol's words: headers, their parsing, and its errors.

https://tus.io/protocols/resumable-upload: core, creation, termination,
checksum and expiration. Every error is a DomainError, so the app's error
middleware answers it as JSON like any other; the tus headers every answer
under /uploads carries are added in one place (protocol_headers).
"""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from email.utils import format_datetime

from aiohttp import hdrs, web

from ..errors import Conflict, DomainError, NotFound
from ..keys import config_key
from ..upload_core.errors import BadUpload, UnsupportedUpload

VERSION = "1.0.0"
EXTENSIONS = ("creation", "termination", "checksum", "expiration")
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_CHARS = 4096
PREFIX = "/uploads"
CORS_METHODS = "POST, HEAD, PATCH, DELETE, OPTIONS"

# What a page on another origin (CORS_ORIGINS) must be able to read from our answers.
EXPOSED_HEADERS = ("Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires",
                   "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size",
                   "Tus-Checksum-Algorithm")


class VersionNotSupported(DomainError):
    status = 412

    def __init__(self) -> None:
        super().__init__(f"send Tus-Resumable: {VERSION}; it is the only version this server speaks")

    def headers(self) -> dict[str, str]:
        return {"Tus-Version": VERSION}


class UploadNotFound(NotFound):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"there is no upload {upload_id} (never created, finished and imported, "
                         "deleted, or expired and swept)")


class UploadGone(DomainError):
    status = 410


class OffsetMismatch(Conflict):
    def __init__(self, sent: int, stored: int) -> None:
        super().__init__(f"Upload-Offset is {sent} but the server has {stored} bytes of this upload; "
                         "HEAD it and continue from there")


class UploadBusy(DomainError):
    """Another request (in this process or another) holds the upload."""

    status = 423

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id} is being written, deleted or imported by another request; "
                         "try again when it ends")


class ChecksumMismatch(DomainError):
    status = 460  # the checksum extension's own code ("Checksum Mismatch")

    def __init__(self, algorithm: str) -> None:
        super().__init__(f"the chunk's {algorithm} is not the one in Upload-Checksum; "
                         "nothing of it was kept, send it again")


def check_version(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != VERSION:
        raise VersionNotSupported()


def check_content_type(request: web.Request) -> None:
    if request.content_type != OFFSET_CONTENT_TYPE:
        raise UnsupportedUpload(f"a PATCH body must be sent as Content-Type: {OFFSET_CONTENT_TYPE}")


def header_int(request: web.Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise BadUpload(f"the {name} header is missing")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise BadUpload(f"{name} must be a whole number of bytes, got {raw[:40]!r}")
    return int(raw)


def parse_metadata(raw: str | None) -> dict[str, bytes]:
    """Upload-Metadata: `key base64,key2 base64,key3` (a key may have no value)."""
    if not raw:
        return {}
    if len(raw) > MAX_METADATA_CHARS:
        raise BadUpload(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters")
    found: dict[str, bytes] = {}
    for pair in raw.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key or not key.isascii() or " " in value.strip():
            raise BadUpload("Upload-Metadata must be comma-separated `key base64value` pairs")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True)
        except ValueError:  # binascii.Error, or a character outside ASCII
            raise BadUpload(f"Upload-Metadata: the value of {key!r} is not base64") from None
    return found


def parse_checksum(raw: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: `ALGORITHM base64digest`, or None when the client sent none."""
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadUpload(f"Upload-Checksum algorithm {algorithm[:20]!r} is not supported; "
                            f"use one of {', '.join(CHECKSUM_ALGORITHMS)}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise BadUpload("Upload-Checksum: the digest is not base64") from None
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise BadUpload(f"Upload-Checksum: a {algorithm} digest is {hashlib.new(algorithm).digest_size} bytes")
    return algorithm, digest


def http_date(moment: datetime) -> str:
    """RFC 9110's IMF-fixdate, as Upload-Expires wants it."""
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


async def protocol_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer under /uploads, errors included, speaks tus."""
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        response.headers.setdefault("Tus-Resumable", VERSION)
        response.headers.setdefault("Access-Control-Expose-Headers", ", ".join(EXPOSED_HEADERS))
        _cors(request, response)


def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """CORS for the origins of CORS_ORIGINS, as aiohttp-cors gives every other route.

    It cannot give it here: tus answers OPTIONS itself (discovery), and aiohttp-cors
    wants that method for its preflights. Any other origin gets no CORS header, so
    a browser keeps its page out.
    """
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or origin not in request.app[config_key].cors_origins:
        return
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
    response.headers.add(hdrs.VARY, "Origin")
    if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = CORS_METHODS
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if asked:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
