"""The QR code on the done screen is the right picture: read back off the rendered widget."""

from __future__ import annotations

from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.geometry import Region

from kiosk.widgets.qrcode import QUIET_ZONE, QRCode, qr_matrix

URL = "http://127.0.0.1:8080/s/2026-03-02-v1-0820.Zm9vYmFyYmF6cXV4"


class QRApp(App[None]):
    def compose(self) -> ComposeResult:
        yield QRCode(URL, id="qr")


def luminance(color: object) -> float:
    r, g, b = color.get_truecolor()  # type: ignore[attr-defined]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def cell_pixels(seg: Segment) -> list[tuple[bool, bool]]:
    """(top is dark, bottom is dark) for each character, from the glyph and its real colours."""
    assert seg.style is not None and seg.style.color is not None and seg.style.bgcolor is not None
    fg_dark = luminance(seg.style.color) < 128
    bg_dark = luminance(seg.style.bgcolor) < 128
    halves = {"█": (fg_dark, fg_dark), "▀": (fg_dark, bg_dark), "▄": (bg_dark, fg_dark), " ": (bg_dark, bg_dark)}
    return [halves[ch] for ch in seg.text]


async def rendered_modules() -> list[list[bool]]:
    """The module matrix as a camera would see the widget on screen (True = dark)."""
    app = QRApp()
    async with app.run_test(size=(120, 60)) as pilot:
        widget = pilot.app.query_one("#qr", QRCode)
        width, height = widget.size
        strips = widget.render_lines(Region(0, 0, width, height))
    rows: list[list[bool]] = []
    for strip in strips:
        cells = [px for seg in strip for px in cell_pixels(seg)]
        rows.append([top for top, _ in cells])
        rows.append([bottom for _, bottom in cells])
    return rows


async def test_rendered_qr_is_qrcodes_own_matrix_with_light_modules_light_and_a_4_module_quiet_zone() -> None:
    want = qr_matrix(URL)
    got = await rendered_modules()
    n = len(want)
    assert len(got[0]) == n and len(got) in (n, n + 1)
    assert got[:n] == want  # dark modules dark, light modules light: not inverted
    assert not any(dark for row in got[n:] for dark in row)  # an odd row count is padded with quiet zone
    # The quiet zone: 4 light modules all round, and the finder pattern starts right after it.
    for i in range(QUIET_ZONE):
        assert not any(got[i]) and not any(got[n - 1 - i])
        assert not any(row[i] for row in got) and not any(row[n - 1 - i] for row in got)
    assert got[QUIET_ZONE][QUIET_ZONE] is True


async def test_a_phone_camera_decodes_the_rendered_widget_to_the_status_url() -> None:
    import zxingcpp  # dev extra: zxing-cpp (wheels bundle the decoder)
    from PIL import Image

    rows = await rendered_modules()
    scale = 8
    img = Image.new("L", (len(rows[0]) * scale, len(rows) * scale), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                img.paste(0, (x * scale, y * scale, (x + 1) * scale, (y + 1) * scale))
    results = zxingcpp.read_barcodes(img)
    assert [r.text for r in results] == [URL]
