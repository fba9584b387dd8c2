"""Which encoding a file is in, by the evidence of its bytes, and whether it is text at all.

docs/files.md has the rule: a BOM decides; else valid UTF-8 multi-byte sequences
against non-ASCII bytes in none; a file that is partly both is for a person to
choose (EncodingUnclear), so a valid UTF-8 row is never read in another encoding
by a guess. Before any guess, bytes no CSV holds are refused (refuse_binary).
"""
from __future__ import annotations

import re

from .refusals import FileRejected, NotCsvText

BOM = b"\xef\xbb\xbf"
BOMS = ((BOM, "utf-8", "utf-8"), (b"\xff\xfe", "utf-16", "utf-16-le"), (b"\xfe\xff", "utf-16", "utf-16-be"))
# Option value -> Python codec (UTF-16's byte order comes from its BOM).
CODECS = {"utf-8": "utf-8", "windows-1252": "cp1252", "latin-1": "latin-1"}
ENCODINGS = ("utf-8", "utf-16", "windows-1252", "latin-1")
# The evidence for UTF-8: its valid multi-byte sequences (RFC 3629's table, no surrogates, no overlongs).
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
                            rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}"
                            rb"|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}")
# A sequence the sample's end cut short is no evidence either way.
_CUT_SEQUENCE = re.compile(rb"(?:[\xc2-\xf4]|[\xe0-\xf4][\x80-\xbf]|[\xf0-\xf4][\x80-\xbf]{2})\Z")
_HIGH_BYTES = bytes(range(0x80, 0x100))
# UTF-8 while at least this share of the evidence (valid sequences + invalid bytes) is valid UTF-8.
UTF8_SHARE = 0.9
# Bytes no text file holds: C0 controls but tab, LF, FF, CR (and ESC, SUB, which old exports keep).
_CONTROL_BYTES = bytes(set(range(0x20)) - {0x09, 0x0a, 0x0c, 0x0d, 0x1a, 0x1b}) + b"\x7f"
BINARY_SAMPLE = 8192
BINARY_SHARE = 0.02  # of the sample's first bytes; a NUL in one row of a CSV is far fewer
BINARY_MIN_CONTROLS = 16  # and never fewer: a short file with a NUL in a row is a CSV with a bad row
# The first bytes of files people mistake for a CSV (images, archives, documents, spreadsheets).
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF-", b"PK\x03\x04", b"PK\x05\x06",
                 b"\xd0\xcf\x11\xe0", b"7z\xbc\xaf", b"Rar!", b"\x7fELF", b"BZh", b"\xfd7zXZ\x00",
                 b"\x28\xb5\x2f\xfd", b"RIFF", b"OggS", b"ID3", b"\x00\x00\x01\x00", b"SQLite format 3")


class EncodingUnclear(FileRejected):
    """The sample is partly valid UTF-8 and partly not: only the person can say which it is."""

    choices = ("utf-8", "windows-1252")

    def __init__(self, valid: int, invalid: int):
        self.evidence = (valid, invalid)
        super().__init__(
            f"the encoding is unclear: the sample holds {valid} valid UTF-8 characters and {invalid} bytes "
            "that are not UTF-8; choose encoding utf-8 (lines that are not UTF-8 become rejects) or "
            "windows-1252 (every line read as Windows-1252)")


def detect_encoding(data: bytes, wanted: str = "auto") -> tuple[str, str, int]:
    """(option value, codec, BOM length): a BOM decides; else the evidence of the bytes (utf8_evidence).

    Mostly valid UTF-8: UTF-8 (its invalid lines become rejects). No valid UTF-8 sequence
    among non-ASCII bytes: Windows-1252. Both: EncodingUnclear, for the person to choose:
    a valid UTF-8 row is never read in another encoding unless a person asked for it.
    """
    for bom, encoding, codec in BOMS:
        if data.startswith(bom) and wanted in ("auto", encoding):
            return encoding, codec, len(bom)
    if wanted == "utf-16":  # no BOM: the byte order its first character shows
        return "utf-16", "utf-16-be" if data[:1] == b"\x00" else "utf-16-le", 0
    if wanted != "auto":
        return wanted, CODECS[wanted], 0
    valid, invalid = utf8_evidence(data)
    if invalid == 0 or valid >= UTF8_SHARE * (valid + invalid):
        return "utf-8", "utf-8", 0
    if valid == 0:
        return "windows-1252", "cp1252", 0
    raise EncodingUnclear(valid, invalid)


def utf8_evidence(data: bytes) -> tuple[int, int]:
    """(valid multi-byte UTF-8 sequences, non-ASCII bytes in none of them) in `data`."""
    cut = _CUT_SEQUENCE.search(data, max(len(data) - 3, 0))  # only the last bytes can be cut
    if cut is not None:
        data = data[:cut.start()]
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    if high == 0:
        return 0, 0
    rest, sequences = _UTF8_SEQUENCE.subn(b"", data)  # no object per match: a sample may hold a million
    return sequences, high - (len(data) - len(rest))


def refuse_binary(data: bytes) -> None:
    """NotCsvText for bytes no CSV file starts with: a known binary format, or control bytes."""
    if data.startswith(_BINARY_MAGIC):
        raise NotCsvText("this is not a CSV file: its first bytes are those of a binary file "
                         "(an image, an archive or a document)")
    head = data[:BINARY_SAMPLE]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls > max(BINARY_SHARE * len(head), BINARY_MIN_CONTROLS):
        nul = " (NUL bytes among them)" if b"\x00" in head else ""
        raise NotCsvText(f"this is not a CSV file: {controls} of its first {len(head)} bytes are "
                         f"control characters{nul}, which text does not hold")
