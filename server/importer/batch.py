"""A Batch: what the parser (records.py, read by parse.py) hands the writer for one window of a file."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Batch:
    start_offset: int
    end_offset: int                # first byte after the last record taken
    end_line: int                  # physical line number at end_offset
    eof: bool                      # end_offset is the end of the file
    ids: list[str]                 # one per distinct Customer Id, last occurrence wins
    lines: list[bytes]             # COPY text-format lines (UTF-8), parallel to ids
    repeats: dict[str, int]        # Customer Id -> occurrences beyond the first, in this batch
    rejects: list[tuple[int, int, str, bytes]]  # line_no, byte_offset, reason, raw
    recent: list[dict]
    accepted_lines: int = 0        # physical lines in accepted records
    stream_end: int | None = None  # gzip: end_offset in the inflated stream (end_offset is the file's)
    blank_lines: int = 0           # physical lines skipped as blank
    line_nos: list[int] = dataclasses.field(default_factory=list)  # line of each id's last occurrence
    # Customer Id -> those repeats whose values equal the occurrence before them: they
    # change nothing, so they count as unchanged, as they would in batches of their own.
    same_repeats: dict[str, int] = dataclasses.field(default_factory=dict)
    start_line: int = 0            # physical line number at start_offset
    # Per id: a 64-bit hash of its line without the job's id, parallel to ids
    # (customers.import_digest, sql/023_*): equal digests, equal values.
    digests: list[int] = dataclasses.field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.ids) + sum(self.repeats.values())
