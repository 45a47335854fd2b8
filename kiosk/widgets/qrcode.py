"""A QR code drawn with half-block characters, scannable by a phone off the screen.

Phones expect dark modules on a light ground. The terminal is dark, so the *light* modules
(and the quiet zone) are drawn in white and the dark modules are left black: each
character cell shows two module rows, the upper one in the cell's top half.
"""

from __future__ import annotations

import qrcode
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

QUIET_ZONE = 4
LIGHT = "#ffffff"
DARK = "#000000"
_STYLE = Style(color=LIGHT, bgcolor=DARK)


def qr_matrix(data: str, border: int = QUIET_ZONE) -> list[list[bool]]:
    """qrcode's module matrix with the quiet zone; True is a dark module."""
    qr = qrcode.QRCode(border=border, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(data)
    qr.make(fit=True)
    return [list(row) for row in qr.get_matrix()]


def half_block_lines(matrix: list[list[bool]]) -> list[str]:
    """Two module rows per text line; a block character is drawn where modules are LIGHT."""
    rows = [*matrix]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))  # an extra light row: more quiet zone
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        chars = []
        for t_dark, b_dark in zip(top, bottom, strict=True):
            chars.append({(False, False): "█", (False, True): "▀", (True, False): "▄", (True, True): " "}[
                (t_dark, b_dark)])
        lines.append("".join(chars))
    return lines


class QRCode(Widget):
    """Shows `data` as a QR code: white light modules on black, 4-module quiet zone."""

    DEFAULT_CSS = """
    QRCode { width: auto; height: auto; background: #000000; color: #ffffff; }
    """

    def __init__(self, data: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data = data
        self.lines = half_block_lines(qr_matrix(data))

    def render(self) -> Text:
        return Text("\n".join(self.lines), style=_STYLE, no_wrap=True, overflow="crop", end="")

    def get_content_width(self, container: object, viewport: object) -> int:
        return len(self.lines[0])

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self.lines)
