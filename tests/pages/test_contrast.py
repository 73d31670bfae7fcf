"""The colour pairs of resident.css meet WCAG 2.2 AA contrast: 4.5:1 for text, 3:1 for the
borders of inputs and for the focus ring against what surrounds it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "gateway" / "static" / "resident.css").read_text("utf-8")
COLOURS = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS))
WHITE = "#ffffff"


def luminance(hex_colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    "foreground, background",
    [
        ("ink", "panel"), ("ink", "page"), ("muted", "panel"), ("muted", "page"),
        ("primary", "panel"), ("primary", "page"), ("primary", "info-bg"),
        ("ok-ink", "ok-bg"), ("warn-ink", "warn-bg"), ("bad-ink", "bad-bg"), ("info-ink", "info-bg"),
        ("bad-ink", "panel"), ("ok-ink", "panel"), ("warn-ink", "panel"),
    ],
)  # fmt: skip
def test_text_pairs(foreground: str, background: str) -> None:
    assert contrast(COLOURS[foreground], COLOURS[background]) >= 4.5


def test_white_text_on_buttons_and_header() -> None:
    assert contrast(WHITE, COLOURS["primary"]) >= 4.5
    assert contrast(WHITE, COLOURS["primary-dark"]) >= 4.5


def test_non_text_contrast() -> None:
    assert contrast(COLOURS["line"], WHITE) >= 3  # input borders
    # The focus ring is amber inside a dark ring: one of the two stands out on any background.
    for background in (WHITE, COLOURS["page"], COLOURS["primary"]):
        assert max(contrast(COLOURS["focus"], background), contrast(COLOURS["ink"], background)) >= 3
