"""/uploads: resumable uploads, tus 1.0.0 (core, creation, termination, checksum, expiration).

A finished upload is imported with POST /import {"upload": ID}, ID being the
last part of its URL. The headers every answer here carries are added by
tus.protocol_headers; errors are JSON like everywhere else.
"""
from __future__ import annotations

from aiohttp import web

from ..auth.middleware import principal
from ..auth.roles import Role, public, requires
from ..config import Config
from ..errors import DomainError
from ..keys import config_key, tus_key
from ..openapi import describe
from ..tus import protocol
from ..tus.protocol import http_date
from ..upload_core.body import refuse_body, refuse_encoded
from ..upload_core.checks import UploadLimits, display_name
from ..upload_core.errors import BadUpload

routes = web.RouteTableDef()
UPLOAD = r"/uploads/{id:[0-9a-f]{32}}"
TAGS = ("uploads",)
NO_STORE = {"Cache-Control": "no-store"}  # offsets change; no cache may answer for us


def discovery_headers(config: Config) -> dict[str, str]:
    return {"Tus-Version": protocol.VERSION, "Tus-Extension": ",".join(protocol.EXTENSIONS),
            "Tus-Max-Size": str(config.upload_max_bytes),
            "Tus-Checksum-Algorithm": ",".join(protocol.CHECKSUM_ALGORITHMS)}


@routes.options("/uploads")
@public  # discovery and CORS preflights come without credentials
@describe("tus discovery: version, extensions, size limit, checksum algorithms (headers)",
          responses={204: "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm"}, tags=TAGS)
async def options_uploads(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=discovery_headers(request.app[config_key]))


@routes.options(UPLOAD)
@public  # discovery and CORS preflights come without credentials
@describe("tus discovery, on an upload's URL", tags=TAGS,
          responses={204: "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm"})
async def options_upload(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=discovery_headers(request.app[config_key]))


@routes.post("/uploads")
@requires(Role.admin)
@describe("tus creation: Upload-Length (and Upload-Metadata, `filename` shown to people); "
          "201 with Location and Upload-Expires", tags=TAGS,
          responses={201: "Location: /uploads/ID", 400: "bad headers", 412: "not Tus-Resumable: 1.0.0",
                     413: "over UPLOAD_MAX_BYTES",
                     429: "the user already holds UPLOADS_MAX_PER_USER uploads",
                     507: "not enough free space, counting what unfinished uploads announced"})
async def create_upload(request: web.Request) -> web.Response:
    protocol.check_version(request)
    config: Config = request.app[config_key]
    if "Upload-Defer-Length" in request.headers:
        raise BadUpload("Upload-Defer-Length is not supported: send Upload-Length")
    size = protocol.header_int(request, "Upload-Length")
    UploadLimits.of(config).check_size(size)
    # Whether announced by Content-Length or sent chunked: a body here is not read, but refused.
    refuse_body(request, "send the bytes with PATCH (creation-with-upload is not supported)")
    raw = request.headers.get("Upload-Metadata")
    metadata = protocol.parse_metadata(raw)
    name = metadata.get("filename") or metadata.get("name") or b""
    upload = await request.app[tus_key].create(
        size=size, filename=display_name(name.decode("utf-8", errors="replace")),
        metadata=raw or None, owner=request_user(request))
    return web.Response(status=201, headers={"Location": f"/uploads/{upload.id}",
                                             "Upload-Expires": http_date(upload.expires)})


@routes.head(UPLOAD)
@requires(Role.admin)
@describe("tus core: how many bytes the server has (Upload-Offset) of how many (Upload-Length); "
          "Upload-Metadata as sent, Upload-Expires", tags=TAGS,
          responses={200: "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires (headers only)",
                     404: "no such upload", 410: "expired", 412: "not Tus-Resumable: 1.0.0"})
async def upload_offset(request: web.Request) -> web.Response:
    protocol.check_version(request)
    upload = await request.app[tus_key].get(request.match_info["id"])
    headers = {**NO_STORE, "Upload-Offset": str(upload.offset), "Upload-Length": str(upload.size),
               "Upload-Expires": http_date(upload.expires)}  # a finished one not imported expires too
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return web.Response(status=200, headers=headers)


@routes.patch(UPLOAD)
@requires(Role.admin)
@describe("tus core: append the body (application/offset+octet-stream) at Upload-Offset; "
          "Upload-Checksum (sha1, sha256, md5) is checked before the bytes count", tags=TAGS,
          body_content_type=protocol.OFFSET_CONTENT_TYPE,
          responses={204: "Upload-Offset: the new offset; Upload-Expires", 404: "no such upload",
                     408: "the body sent nothing, or under 64 KiB, in UPLOAD_STALL_SECONDS",
                     409: "Upload-Offset is not the server's", 410: "expired", 413: "past Upload-Length",
                     415: "wrong Content-Type, or a Content-Encoding",
                     423: "another request holds the upload",
                     429: "too many uploads at once (Retry-After)", 460: "checksum mismatch",
                     507: "not enough free space"})
async def append_chunk(request: web.Request) -> web.Response:
    try:
        protocol.check_version(request)
        protocol.check_content_type(request)
        refuse_encoded(request)  # aiohttp would inflate it past every byte limit
        offset = protocol.header_int(request, "Upload-Offset")
        checksum = protocol.parse_checksum(request.headers.get("Upload-Checksum"))
        upload = await request.app[tus_key].write(
            request.match_info["id"], offset, request.content,
            length=request.content_length, checksum=checksum)
    except DomainError as exc:
        exc.close_connection = True  # the rest of a refused body is not wanted
        raise
    return web.Response(status=204, headers={"Upload-Offset": str(upload.offset),
                                             "Upload-Expires": http_date(upload.expires)})


@routes.delete(UPLOAD)
@requires(Role.admin)
@describe("tus termination: the upload's file and row are removed", tags=TAGS,
          responses={204: "removed", 404: "no such upload", 423: "another request holds the upload"})
async def delete_upload(request: web.Request) -> web.Response:
    protocol.check_version(request)
    await request.app[tus_key].delete(request.match_info["id"])
    return web.Response(status=204)


def request_user(request: web.Request) -> str:
    """Who creates the upload, for its `owner`."""
    return principal(request).label
