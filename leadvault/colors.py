"""Colour contrast after WCAG 2.x, so brand colours stay readable.

Only ``#rrggbb`` colours (settings normalise ``#rgb``).
"""

from __future__ import annotations

WHITE = "#ffffff"
BLACK = "#000000"
AA = 4.5


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """Relative luminance of ``#rrggbb`` (0 black … 1 white)."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(first: str, second: str) -> float:
    """The contrast ratio of two colours, 1 … 21."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def text_on(background: str) -> str:
    """White or black, whichever reads better on ``background`` (one always reaches 4.5:1)."""
    return WHITE if contrast(WHITE, background) >= contrast(BLACK, background) else BLACK


def _mix(color: str, other: str, share: float) -> str:
    channels = []
    for i in (1, 3, 5):
        a, b = int(color[i : i + 2], 16), int(other[i : i + 2], 16)
        channels.append(round(a + (b - a) * share))
    return "#" + "".join(f"{c:02x}" for c in channels)


def readable_on(color: str, background: str, minimum: float = AA) -> str:
    """``color``, darkened or lightened just enough to reach ``minimum`` on ``background``."""
    if contrast(color, background) >= minimum:
        return color
    target = BLACK if luminance(background) > 0.18 else WHITE
    for step in range(1, 21):
        candidate = _mix(color, target, step / 20)
        if contrast(candidate, background) >= minimum:
            return candidate
    return target
