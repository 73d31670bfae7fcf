"""Payment-QR rendering speed on cache misses: qrcode's automatic search vs our fixed choice.

    .venv/bin/python bench/qr_render.py [--quick]

Every image is a distinct, real payment URL (signed token), so nothing is cached. Rows:

* ``auto``   qrcode defaults: ``QRCode(error_correction=M)``, ``add_data(url)``, ``make()``
             (version fitting, data-mode optimisation, search over the 8 masks), then the same
             PNG/SVG writers as ours, so the ratio isolates the parameter choice.
* ``fixed``  ``QrRenderer`` (``invoices.qr``): version from the URL length, mask 2, one byte
             segment; every call a cache miss.
* ``qrcode writers``, for reference: qrcode's own ``SvgPathImage``, and its default PNG factory
             (Pillow or pypng) when one is installed, with the automatic search.

One process, one thread. The headline figure is images per CPU second (``process_time``), i.e.
per core, which stays meaningful on a machine shared with other jobs; wall-clock images/s is
shown beside it. Medians over repeats.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import cast

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.svg import SvgPathImage

from invoices.qr import QrRenderer, payment_url, png_from_modules, svg_from_modules
from invoices.tokens import KeyRing, generate_key

BASE = "https://pay.example-city.lg.jp"


def make_urls(count: int) -> list[str]:
    ring = KeyRing.from_config(generate_key("k1"))
    return [payment_url(BASE, ring.sign(os.urandom(16), 0)) for _ in range(count)]


def auto_modules(url: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(url)
    code.make()
    return cast(list[list[bool]], code.modules)  # complete after make(): no None left


def auto_png(url: str) -> bytes:
    return png_from_modules(auto_modules(url))


def auto_svg(url: str) -> bytes:
    return svg_from_modules(auto_modules(url))


def qrcode_svg_path(url: str) -> bytes:
    out = io.BytesIO()
    qrcode.make(url, image_factory=SvgPathImage, error_correction=ERROR_CORRECT_M).save(out)
    return out.getvalue()


def qrcode_default_png(url: str) -> bytes:
    out = io.BytesIO()
    qrcode.make(url, error_correction=ERROR_CORRECT_M, box_size=8).save(out)
    return out.getvalue()


def png_writer_available() -> str | None:
    for module in ("PIL", "png"):
        try:
            __import__(module)
        except ImportError:
            continue
        return {"PIL": "Pillow", "png": "pypng"}[module]
    return None


def rate(render: Callable[[str], bytes], urls: list[str]) -> tuple[float, float]:
    """(images per CPU second, images per wall-clock second)."""
    cpu, wall = time.process_time(), time.perf_counter()
    for url in urls:
        render(url)
    return len(urls) / (time.process_time() - cpu), len(urls) / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 10 s)")
    args = parser.parse_args()
    per_run, repeats = (40, 1) if args.quick else (200, 3)

    png_writer = png_writer_available()
    variants: dict[str, Callable[[str], bytes]] = {}
    renderers: dict[str, QrRenderer] = {}

    def fixed(kind: str) -> Callable[[str], bytes]:
        def render(url: str) -> bytes:
            # A fresh renderer per run and distinct URLs: every call is a miss.
            return getattr(renderers[kind], kind)(url)  # type: ignore[no-any-return]

        return render

    variants["png auto"] = auto_png
    variants["png fixed"] = fixed("png")
    variants["svg auto"] = auto_svg
    variants["svg fixed"] = fixed("svg")
    variants["svg qrcode SvgPathImage (auto)"] = qrcode_svg_path
    if png_writer:
        variants[f"png qrcode {png_writer} (auto)"] = qrcode_default_png

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, render in variants.items():  # interleaved, so load drifts hit all rows alike
            renderers["png"], renderers["svg"] = QrRenderer(), QrRenderer()
            results[name].append(rate(render, make_urls(per_run)))
            if name.endswith("fixed"):
                info = renderers[name[:3]].cache_info()[name[:3]]
                assert info.hits == 0 and info.misses == per_run, info

    print(
        f"python {platform.python_version()}, qrcode {version('qrcode')}, "
        f"{per_run} distinct URLs x {repeats} runs, load {os.getloadavg()[0]:.2f}, "
        f"URL length {len(make_urls(1)[0])}"
    )
    median = {name: statistics.median(cpu for cpu, _ in runs) for name, runs in results.items()}
    wall = {name: statistics.median(w for _, w in runs) for name, runs in results.items()}
    print(f"  {'':34s} {'per CPU s':>10s} {'wall':>8s}")
    for name, value in median.items():
        print(f"  {name:34s} {value:10.0f} {wall[name]:8.0f}  images/s")
    for kind in ("png", "svg"):
        ratio = median[f"{kind} fixed"] / median[f"{kind} auto"]
        print(f"  {kind}: fixed / auto = {ratio:.1f}x")
    if not png_writer:
        print("  (qrcode's own PNG writers need Pillow or pypng: not installed, row skipped)")


if __name__ == "__main__":
    main()
