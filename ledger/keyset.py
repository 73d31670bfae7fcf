"""Opaque keyset-pagination cursors shared by every list in nofu.

A cursor names the last row id a page ended on, with the direction the next page reads in
(``after:`` for ascending lists, ``before:`` for newest-first ones), base64url-encoded so clients
treat it as opaque. Decoding refuses anything this module did not produce; callers raise their
own error (with their own code) when it returns None.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

Direction = Literal["after", "before"]
_MAX_LENGTH = 40
_PATTERNS = {d: re.compile(rf"{d}:([1-9][0-9]{{0,18}})") for d in ("after", "before")}


def encode_cursor(last_id: int, direction: Direction = "after") -> str:
    return base64.urlsafe_b64encode(f"{direction}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, direction: Direction = "after") -> int | None:
    """The row id in ``cursor``, or None when it is not a cursor of this direction."""
    if len(cursor) > _MAX_LENGTH:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    match = _PATTERNS[direction].fullmatch(text)
    return None if match is None else int(match.group(1))
