"""What the kiosk shows in `waitroom demo`: that it is a demo, and what to try on it.

The demo's server address, console sign-in and tokens are printed at start and then hidden
by the full-screen kiosk; one line under the top bar keeps them in reach (issue 15 item 4).
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.i18n import t


@dataclass(frozen=True)
class DemoNote:
    numbers: tuple[str, ...]  # mobile numbers with a booking still to come, as people write them
    readme: str  # where the addresses, sign-in and tokens are written down

    def line(self, lang: str) -> str:
        return t(lang, "demo_line", numbers=" / ".join(self.numbers), readme=self.readme)
