"""Large text in a terminal: words drawn with quarter-block characters, four times as tall.

A terminal cannot change its font size for one widget, and the kiosk's terminal (foot under
cage) cannot be asked to change it at all. So large-text mode draws the screen's question,
its messages and its button labels with a real typeface (DejaVu Sans through Pillow, accents
and ¿¡ included), two pixels per cell across and two down: a letter about 3 cells wide and
5 rows tall instead of 1 by 1.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont
from textual.app import RenderResult
from textual.content import Content
from textual.geometry import Size
from textual.widgets import Button, Static

SIZE = 12  # pixels: a capital about 9 px (5 rows) tall
_QUAD = " ▘▝▀▖▌▞▛▗▚▐▜▄▙▟█"  # index = top-left + 2*top-right + 4*bottom-left + 8*bottom-right


FONT = "DejaVuSans.ttf"  # Debian's fonts-dejavu-core: every accent Spanish needs, and ¿ ¡


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:  # no DejaVu: Pillow's own face still draws plain letters
        return ImageFont.load_default(size=size)


def _line_box(size: int, text: str = "bdfhklgjpqyéÑ¿¡") -> tuple[int, int]:
    """The pixel rows a line occupies (top, bottom): by default any line's, lower-case accents,
    ascenders and descenders included; for one short label (a key), that label's own ink."""
    _, top, _, bottom = _font(size).getbbox(text, mode="1")
    return int(top), int(bottom)


def _width_px(text: str, size: int) -> float:
    # Measured as drawn: without anti-aliasing FreeType's hinting widens the letters.
    return float(_font(size).getbbox(text, mode="1")[2]) if text else 0.0


def wrap(text: str, cells: int, size: int = SIZE) -> list[str]:
    """Lines of `text` (its own line breaks kept) that fit `cells` columns when drawn big."""
    out: list[str] = []
    limit = max(2, cells * 2 - 2)  # two pixels per cell
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            candidate = f"{line} {word}" if line else word
            if line and _width_px(candidate, size) > limit:
                out.append(line)
                line = word
            else:
                line = candidate
        out.append(line)
    return out


@lru_cache(maxsize=512)
def render(text: str, cells: int, size: int = SIZE, tight: bool = False) -> str:
    """`text` drawn big, wrapped to `cells` columns: one string with a newline per terminal row.
    `tight`: only as tall as this text's own ink (keypad keys), not a full line."""
    font = _font(size)
    top, bottom = _line_box(size, text) if tight and text.strip() else _line_box(size)
    height = bottom - top + 1
    height += height % 2
    rows: list[str] = []
    for line in wrap(text, cells, size):
        width = max(2, int(_width_px(line, size)) + 2)
        width += width % 2
        img = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(img)
        draw.fontmode = "1"  # no anti-aliasing: a pixel is on or off
        draw.text((0, -top + 1), line, font=font, fill=1)
        px = img.load()
        assert px is not None
        for y in range(0, height, 2):
            rows.append("".join(
                _QUAD[bool(px[x, y]) + 2 * bool(px[x + 1, y]) + 4 * bool(px[x, y + 1]) + 8 * bool(px[x + 1, y + 1])]
                for x in range(0, width, 2)))
    return "\n".join(rows)


def _large(widget: Static | Button) -> bool:
    """Whether the client chose large text. Hints stay one plain line: every screen must fit."""
    session = getattr(widget.app, "session", None)
    return bool(getattr(session, "large", False)) and not widget.has_class("hint")


# Marks the typeface lacks: a check box is said in letters, the delete key's arrow is left out.
_SUBS = str.maketrans({"☑": "[X]", "☐": "[  ]", "✓": "", "⌫": "", "●": "", "○": "", "◆": ""})


def big_words(text: str) -> str:
    return " ".join(text.translate(_SUBS).split(" ")).strip()


def rows(text: str, cells: int, tight: bool = False) -> int:
    return render(text, cells, tight=tight).count("\n") + 1


class Say(Static):
    """A Static that is drawn big when the client chose large text. Its words stay in `words`
    (read aloud and by tests either way)."""

    def __init__(self, words: str = "", **kw: object) -> None:
        super().__init__(words, **kw)  # type: ignore[arg-type]
        self.words = words

    def update(self, content: object = "", *, layout: bool = True) -> None:
        self.words = str(content)
        super().update(content, layout=layout)  # type: ignore[arg-type]

    def render(self) -> RenderResult:
        if _large(self) and self.words.strip():
            return Content(render(big_words(self.words), max(4, self.content_size.width)))
        return super().render()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if _large(self) and self.words.strip():
            return rows(big_words(self.words), max(4, width))
        return super().get_content_height(container, viewport, width)


def label_text(button: Button) -> str:
    """A button's label as plain words."""
    label = button.label
    return label if isinstance(label, str) else label.plain


class BigButton(Button):
    """A Button whose label is drawn big in large-text mode."""

    tight = False

    def render(self) -> RenderResult:
        if _large(self):
            return Content(render(big_words(label_text(self)), max(4, self.content_size.width), tight=self.tight))
        return super().render()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if _large(self):
            return rows(big_words(label_text(self)), max(4, width), tight=self.tight)
        return super().get_content_height(container, viewport, width)
