"""The bodies and errors of /import and /import/jobs, as the OpenAPI document names them."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pydantic

from ..errors import DomainError
from ..fields import IMPORTED_NAMES
from ..importer.dates import LAYOUTS, DateFormatUnclear
from ..importer.header import DELIMITERS, ENCODINGS, EncodingUnclear


class Job(pydantic.BaseModel):
    """An import job, as stored in import_jobs (percent, rate and ETA derived)."""

    id: int
    status: Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
    filename: str
    bytes_total: int
    bytes_done: int
    percent: float
    line_no: int
    rows_done: int
    inserted: int
    updated: int
    skipped_manual: int
    rejected: int
    rows_per_second: float | None
    eta_seconds: float | None
    unknown_columns: list[str]
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    error: str | None
    worker: str | None = pydantic.Field(description="host:pid of the process running it")
    created_by: str | None = pydantic.Field(
        None, description="who started it: a user, token:NAME, or null for the command line")
    event_seq: int = pydantic.Field(description="id of the last event about this job")
    options: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="effective encoding, delimiter, date_format, mapping, dry_run")
    # issue 24: history and undo (docs/history.md)
    unchanged: int = pydantic.Field(0, description="rows whose values equal the stored ones: not written")
    deleted: int = pydantic.Field(0, description="an undo: customers it removed (the undone import inserted them)")
    kind: Literal["import", "undo"] = "import"
    undoes: int | None = pydantic.Field(None, description="an undo: the job it takes back")


class Idle(pydantic.BaseModel):
    """No import has ever run."""

    status: Literal["idle"]


class CurrentJob(pydantic.RootModel[Job | Idle]):
    """The active job, else the last one, else {"status": "idle"}."""


class StartedJob(Job):
    """The job just queued; for an upload also what the server stored."""

    upload: dict[str, Any] | None = pydantic.Field(
        None, description="for uploads: {sha256, bytes} of the file as received")


class JobPage(pydantic.BaseModel):
    """Jobs, newest first; `next` is the `before` of the following page."""

    items: list[Job]
    next: int | None


class JobConflict(pydantic.BaseModel):
    """The action is not allowed now; `job` is the job in the way."""

    error: str
    job: Job


class Error(pydantic.BaseModel):
    """What is wrong, in words."""

    error: str


class RecentRows(pydantic.BaseModel):
    """The latest imported rows, oldest first (about truncated to 200 characters)."""

    items: list[dict[str, Any]]


class ImportOptions(pydantic.BaseModel):
    """How to read the file; `auto` detects from a sample (docs/files.md)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    # The choices are the importer's own tuples, so a Literal built at run time (pydantic
    # reads it; mypy cannot follow a Literal built from a tuple).
    encoding: Literal[("auto", *ENCODINGS)] = "auto"  # type: ignore[valid-type]
    delimiter: Literal[("auto", *DELIMITERS)] = "auto"  # type: ignore[valid-type]
    date_format: Literal[("auto", *LAYOUTS)] = "auto"  # type: ignore[valid-type]
    mapping: dict[str, Literal[IMPORTED_NAMES] | None] = pydantic.Field(  # type: ignore[valid-type]
        default_factory=dict, description="file column -> customer field, or null to ignore the column")
    dry_run: bool = pydantic.Field(False, description="count and reject as an import would; change no customer")

    def wanted(self) -> dict:
        return self.model_dump(include=set(ImportOptions.model_fields))


class ImportPath(ImportOptions):
    """A file already inside the import directory, by its relative name."""

    path: str = pydantic.Field(min_length=1, max_length=1024)


class ImportUpload(ImportOptions):
    """A finished resumable upload, by its id (the last part of its /uploads URL)."""

    upload: str = pydantic.Field(pattern=r"^[0-9a-f]{32}$")


class ImportSource(pydantic.RootModel[ImportPath | ImportUpload]):
    """What to import: `path` or `upload`, one of them."""


class JobsQuery(pydantic.BaseModel):
    before: int | None = pydantic.Field(None, ge=1, le=2**63 - 1, description="job id to page back from")
    limit: int = pydantic.Field(50, ge=1, le=200)


class RejectsQuery(pydantic.BaseModel):
    format: Literal["lines", "file"] = pydantic.Field(
        "lines", description="lines: line number, offset, reason and raw bytes; file: the file's header and "
        "each rejected record as it was, in UTF-8, to fix and import again")


class RejectReason(pydantic.BaseModel):
    reason: str = pydantic.Field(description="what went wrong; a value quoted from the row is shown as …")
    rows: int
    first_line: int = pydantic.Field(description="the first line of the file rejected for it")


class RejectReasons(pydantic.BaseModel):
    """A job's rejects grouped by reason, most rows first."""

    items: list[RejectReason]


class ReasonsQuery(pydantic.BaseModel):
    limit: int = pydantic.Field(10, ge=1, le=100, description="at most this many reasons")


class UnsupportedBody(DomainError):
    status = 415


class UnclearDates(DomainError):
    """auto could not tell the date layout; `date_formats` names those that fit best."""

    status = 422

    def __init__(self, exc: DateFormatUnclear):
        super().__init__(str(exc))
        self.fits = exc.fits

    def body(self) -> dict:
        return {"error": str(self), "field": "date_format", "date_formats": self.fits}


class UnreadableFile(DomainError):
    status = 422


class UnclearEncoding(DomainError):
    """auto found the sample partly UTF-8, partly not; `encodings` names the choices."""

    status = 422

    def __init__(self, exc: EncodingUnclear):
        super().__init__(str(exc))

    def body(self) -> dict:
        return {"error": str(self), "field": "encoding", "encodings": list(EncodingUnclear.choices)}


class NotAnImportPath(DomainError):
    status = 400


class ValueCheck(pydantic.BaseModel):
    """How many of a column's sampled values look like its field's (server/fields.py shapes)."""

    kind: Literal["email", "date", "phone", "url"]
    sampled: int
    matching: int
    warning: str | None = pydantic.Field(description="set when most sampled values do not look like the field")


class PreviewColumn(pydantic.BaseModel):
    name: str
    field: str | None
    suggestions: list[str]
    check: ValueCheck | None = pydantic.Field(description="null: the field has no shape to check")


class Preview(pydantic.BaseModel):
    """What an import of this file would do, from a sample; `upload` imports it without sending it again."""

    encoding: str
    delimiter: str
    date_format: str
    date_formats: list[str]
    columns: list[PreviewColumn]
    rows: list[dict[str, Any]]
    estimated_rows: int
    non_ascii_examples: list[str] = pydantic.Field(
        description="up to 5 words with non-ASCII letters as the encoding reads them (José, not JosÃ©)")
    fields: list[dict[str, str]] = pydantic.Field(description="every customer field a column can go to")
    upload: str | None = None
