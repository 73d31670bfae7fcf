"""Which text encoding an import file uses: UTF-8 (with or without BOM) or Shift_JIS (cp932).

Decided from the whole file, streamed in chunks (constant memory):
- a UTF-8 BOM means UTF-8; a UTF-16/UTF-32 BOM is refused (not an export format we accept);
- a file that decodes as UTF-8 is UTF-8 (pure ASCII included: both readings agree);
- a file where valid UTF-8 characters outnumber the undecodable spots is a damaged UTF-8 file:
  refused at the first bad line rather than read as Shift_JIS mojibake;
- otherwise it must decode as cp932 (Windows Shift_JIS, which Japanese systems export), or it
  is refused at the first line that does not.
The same pass computes the file's SHA-256.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from invoices.errors import RowError

CHUNK = 1 << 20
UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
SHIFT_JIS = "cp932"
_UNSUPPORTED_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class Detected:
    encoding: str | None  # None when refused
    sha256: str
    error: RowError | None


def _utf8_scan(f: BinaryIO, start: int) -> tuple[int, int, int, str]:
    """(valid non-ASCII characters, replacement spots, first bad line or 0, sha256)."""
    f.seek(start)
    sha = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(UTF8)("replace")
    good = bad = first_bad_line = 0
    newlines = 0
    while True:
        chunk = f.read(CHUNK)
        sha.update(chunk)
        text = decoder.decode(chunk, final=not chunk)
        if not text.isascii():
            spots = text.count("\ufffd")
            if spots and not first_bad_line:
                first_bad_line = newlines + text[: text.index("\ufffd")].count("\n") + 1
            bad += spots
            good += len(text) - len(text.encode("ascii", "ignore")) - spots
        newlines += text.count("\n")
        if not chunk:
            return good, bad, first_bad_line, sha.hexdigest()


def _strict_scan(f: BinaryIO, start: int, encoding: str) -> int:
    """0 when the file decodes strictly, else the first line that does not."""
    f.seek(start)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    newlines = 0
    while True:
        chunk = f.read(CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            return newlines + exc.object[: exc.start].count(b"\n") + 1
        newlines += chunk.count(b"\n")
        if not chunk:
            return 0


def detect_encoding(f: BinaryIO, start: int = 0) -> Detected:
    """The encoding to read ``f`` (from offset ``start``) with, or why it cannot be read."""
    f.seek(start)
    head = f.read(4)
    good, bad, first_bad_line, digest = _utf8_scan(f, start)
    if head.startswith(codecs.BOM_UTF8):
        if bad:
            return Detected(None, digest, _undecodable(first_bad_line, "UTF-8"))
        return Detected(UTF8_BOM, digest, None)
    if any(head.startswith(bom) for bom in _UNSUPPORTED_BOMS):
        return Detected(
            None,
            digest,
            RowError(
                0,
                None,
                "invoice_import.unsupported_encoding",
                "UTF-16/UTF-32 files are not accepted: export as UTF-8 or Shift_JIS",
            ),
        )
    if not bad:
        return Detected(UTF8, digest, None)
    if good > bad:
        return Detected(None, digest, _undecodable(first_bad_line, "UTF-8"))
    bad_line = _strict_scan(f, start, SHIFT_JIS)
    if bad_line:
        return Detected(None, digest, _undecodable(bad_line, "Shift_JIS"))
    return Detected(SHIFT_JIS, digest, None)


def _undecodable(line: int, reading: str) -> RowError:
    return RowError(
        line,
        None,
        "invoice_import.undecodable",
        f"bytes that are not valid {reading} (files must be UTF-8, with or without BOM, or Shift_JIS)",
    )
