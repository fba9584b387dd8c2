"""The refusals of an upload: one class per HTTP status, whichever door it came through.

Each names what is wrong in its message; the adapters (multipart, tus) only
choose the message. Protocol errors of tus alone (409, 410, 412, 423, 460)
live in server/tus/protocol.py.
"""
from __future__ import annotations

from ..errors import DomainError


class BadUpload(DomainError):
    """The request is malformed: a header, the multipart framing, a body cut short."""

    status = 400


class UploadStalled(DomainError):
    """The body sent nothing, or too little, for UPLOAD_STALL_SECONDS."""

    status = 408


class UploadTooLarge(DomainError):
    status = 413


class UnsupportedUpload(DomainError):
    """Not what the server takes: not a CSV file, a Content-Encoding, a wrong Content-Type."""

    status = 415


class BadCsvHeader(DomainError):
    """A CSV file whose first line the import engine refuses (no Customer Id, ...)."""

    status = 422


class TooManyUploads(DomainError):
    """The user already holds as many uploads as UPLOADS_MAX_PER_USER allows."""

    status = 429


class NoRoom(DomainError):
    """The bytes would leave less than UPLOAD_MIN_FREE_BYTES free where uploads are kept."""

    status = 507

    @classmethod
    def below_floor(cls, min_free_bytes: int) -> NoRoom:
        return cls(f"not enough free disk space for this upload: the import directory must keep "
                   f"{min_free_bytes} bytes free (UPLOAD_MIN_FREE_BYTES)")


class ClientGone(BadUpload):
    """The request body ended early: the client went away or the connection broke.

    Nobody hears the answer; it is a 400 so that the access log shows what
    happened rather than a server error.
    """

    def __init__(self) -> None:
        super().__init__("the request body ended before it was complete: the client went away "
                         "or the connection broke")
