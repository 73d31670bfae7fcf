import base64
import hashlib
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import qrcode
import qrcode.util
from hypothesis import given
from hypothesis import strategies as st
from qrcode.constants import ERROR_CORRECT_M

from invoices.qr import (
    MASK_PATTERN,
    QrError,
    QrRenderer,
    payment_url,
    png_from_modules,
    qr_modules,
    render_png,
    render_svg,
    smallest_version,
    svg_from_modules,
)
from invoices.tokens import KeyRing

SEED = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
RING = KeyRing.from_config(f"k1:{SEED}")
BASE = "https://pay.example-city.lg.jp"
URL = payment_url(BASE, RING.sign(bytes(range(16)), 0))

needs_zbar = pytest.mark.skipif(shutil.which("zbarimg") is None, reason="Debian zbar-tools")
needs_rsvg = pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="librsvg2-bin")


def sample_urls() -> list[str]:
    """Real payment URLs: several refs, generations, both key-id lengths, two bases."""
    ring8 = KeyRing.from_config(f"k2345678:{SEED}")
    urls = [payment_url(BASE, RING.sign(bytes([i]) * 16, i)) for i in range(6)]
    urls += [
        payment_url(BASE, RING.sign(b"\x01", 0)),
        payment_url(BASE, ring8.sign(bytes(16), 65535)),
    ]
    urls.append(payment_url("http://localhost:8000/", RING.sign(b"x" * 10, 3)))
    return urls


def zbar(paths: list[Path]) -> list[str]:
    result = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.splitlines()


def png_pixels(png: bytes) -> list[list[int]]:
    """Minimal reader for our 1-bit greyscale PNGs (filters None and Up only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, chunks = 8, b"", []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(
            kind + data
        )
        chunks.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert (depth, colour, interlace) == (1, 0, 0)
        idat += data if kind == b"IDAT" else b""
        pos += 12 + length
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]  # no tIME/tEXt: nothing varies between runs
    raw = zlib.decompress(idat)
    stride = (width + 7) // 8
    rows, previous = [], bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        assert line[0] in (0, 2)
        current = bytes(
            (b + (previous[i] if line[0] == 2 else 0)) & 0xFF for i, b in enumerate(line[1:])
        )
        bits = "".join(f"{b:08b}" for b in current)[:width]
        rows.append([int(bit) for bit in bits])
        previous = current
    return rows


def svg_modules(svg: bytes, border: int) -> list[list[bool]]:
    text = svg.decode()
    side = int(re.search(r'viewBox="0 0 (\d+) \1"', text).group(1))  # type: ignore[union-attr]
    dark = re.search(r'<path fill="#000" d="([^"]*)"', text).group(1)  # type: ignore[union-attr]
    grid = [[False] * side for _ in range(side)]
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", dark):
        for i in range(int(w)):
            grid[int(y)][int(x) + i] = True
    assert re.sub(r"M\d+ \d+h(\d+)v1h-\1z", "", dark) == ""  # nothing else in the path
    n = side - 2 * border
    assert all(not any(row) for row in grid[:border] + grid[side - border :])
    return [row[border : border + n] for row in grid[border : border + n]]


def test_payment_url_shape() -> None:
    assert payment_url("https://pay.example.jp/", "abc_-9") == "https://pay.example.jp/p/abc_-9"
    assert payment_url("https://city.jp/nofu", "t") == "https://city.jp/nofu/p/t"


@pytest.mark.parametrize(
    ("base", "token"),
    [
        ("pay.example.jp", "abc"),
        ("ftp://pay.example.jp", "abc"),
        ("https://pay.example.jp?x=1", "abc"),
        ("https://pay example.jp", "abc"),
        (BASE, ""),
        (BASE, "abc/../x"),
        (BASE, "abc=="),
    ],
)
def test_payment_url_refusals(base: str, token: str) -> None:
    with pytest.raises(QrError) as err:
        payment_url(base, token)
    assert err.value.code == "qr.invalid_input"


def fit_by_qrcode(size: int) -> int:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M)
    code.add_data(qrcode.util.QRData(b"a" * size, mode=qrcode.util.MODE_8BIT_BYTE))
    return int(code.best_fit())


@given(st.integers(1, 2331))
def test_smallest_version_agrees_with_qrcode_best_fit(size: int) -> None:
    assert smallest_version(size) == fit_by_qrcode(size)


@pytest.mark.parametrize("size", [1, 14, 15, 122, 152, 153, 154, 2331])
def test_smallest_version_at_capacity_edges(size: int) -> None:
    assert smallest_version(size) == fit_by_qrcode(size)


def test_our_urls_fit_version_8() -> None:
    assert len(URL) == 148
    assert smallest_version(len(URL)) == 8 and len(qr_modules(URL)) == 8 * 4 + 17


def test_too_much_data_is_refused() -> None:
    with pytest.raises(QrError):
        smallest_version(2332)
    with pytest.raises(QrError):
        qr_modules("")


def test_modules_equal_qrcode_with_our_parameters() -> None:
    reference = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0, mask_pattern=MASK_PATTERN)
    reference.add_data(URL, optimize=0)
    reference.make()
    assert qr_modules(URL) == reference.modules


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_png_pixels_are_the_modules_scaled_with_quiet_zone(scale: int) -> None:
    modules = qr_modules(URL)
    pixels = png_pixels(png_from_modules(modules, scale=scale, border=4))
    side = (len(modules) + 8) * scale
    assert len(pixels) == side and all(len(row) == side for row in pixels)
    for y in range(side):
        for x in range(side):
            my, mx = y // scale - 4, x // scale - 4
            inside = 0 <= my < len(modules) and 0 <= mx < len(modules)
            dark = inside and modules[my][mx]
            assert pixels[y][x] == (0 if dark else 1), (x, y)


def test_png_without_border() -> None:
    modules = qr_modules(URL)
    pixels = png_pixels(png_from_modules(modules, scale=2, border=0))
    assert pixels[0][0] == 0  # the finder pattern's corner is dark
    assert len(pixels) == 2 * len(modules)


def test_svg_paths_are_the_modules() -> None:
    modules = qr_modules(URL)
    svg = svg_from_modules(modules, border=4)
    assert svg_modules(svg, border=4) == modules
    assert b'width="456" height="456"' in svg and b'viewBox="0 0 57 57"' in svg


@pytest.mark.parametrize(("scale", "border"), [(0, 4), (8, -1)])
def test_bad_geometry_is_refused(scale: int, border: int) -> None:
    modules = qr_modules(URL)
    for render in (png_from_modules, svg_from_modules):
        with pytest.raises(QrError):
            render(modules, scale=scale, border=border)
    with pytest.raises(QrError):
        QrRenderer(scale=scale, border=border)


def test_rendering_is_deterministic_across_processes() -> None:
    script = (
        "import hashlib, sys; from invoices.qr import render_png, render_svg; "
        "u = sys.argv[1]; print(hashlib.sha256(render_png(u) + render_svg(u)).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script, URL], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert digests == {hashlib.sha256(render_png(URL) + render_svg(URL)).hexdigest() + "\n"}


@needs_zbar
def test_png_decodes_to_the_url_with_zbar(tmp_path: Path) -> None:
    urls = sample_urls()
    paths = []
    for i, url in enumerate(urls):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(render_png(url))
    assert zbar(paths) == urls


@needs_zbar
def test_small_png_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(render_png(URL, scale=3))
    assert zbar([path]) == [URL]


@needs_zbar
@needs_rsvg
def test_svg_decodes_to_the_url_with_zbar(tmp_path: Path) -> None:
    urls = sample_urls()[:4]
    paths = []
    for i, url in enumerate(urls):
        svg, png = tmp_path / f"{i}.svg", tmp_path / f"{i}.png"
        svg.write_bytes(render_svg(url))
        subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True, timeout=60)
        paths.append(png)
    assert zbar(paths) == urls


def test_renderer_caches_same_url() -> None:
    renderer = QrRenderer(maxsize=8)
    first = renderer.png(URL)
    assert renderer.png(URL) is first and renderer.svg(URL) == render_svg(URL)
    assert first == render_png(URL)
    info = renderer.cache_info()
    assert (info["png"].hits, info["png"].misses) == (1, 1)


def test_renderer_cache_is_bounded_lru() -> None:
    renderer = QrRenderer(maxsize=2)
    a, b, c = sample_urls()[:3]
    renderer.png(a)
    renderer.png(b)
    renderer.png(a)  # a is now the most recent
    renderer.png(c)  # evicts b
    assert renderer.cache_info()["png"].currsize == 2
    renderer.png(a)
    assert renderer.cache_info()["png"].hits == 2
    renderer.png(b)
    assert renderer.cache_info()["png"].misses == 4


def test_renderer_uses_its_geometry() -> None:
    renderer = QrRenderer(scale=2, border=1)
    assert renderer.png(URL) == render_png(URL, scale=2, border=1)
    assert b'width="102"' in renderer.svg(URL)  # (49 + 2 * 1) modules * 2 px
