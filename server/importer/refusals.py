"""Why a file as a whole cannot be imported: the exceptions every reader of a file raises.

Their own module so that the lowest readers (inflate.py) raise them too, and every
caller that turns FileRejected into a 415/422 or a failed job's message catches them all.
"""
from __future__ import annotations


class FileRejected(Exception):
    """The file as a whole cannot be imported; the message says why."""


class NotCsvText(FileRejected):
    """Not text a CSV file is made of (binary, not UTF-8, no line breaks)."""


class BrokenGzip(FileRejected):
    """A gzip file cut off or damaged: its message says which, in words."""
