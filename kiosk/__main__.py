"""`python -m kiosk --server URL --token TOKEN` (the same as `waitroom kiosk`)."""

from __future__ import annotations

import argparse

from kiosk.app import run_kiosk


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kiosk", description="waitroom lobby kiosk")
    p.add_argument("--server", help="server URL (default $WAITROOM_SERVER)")
    p.add_argument("--token", help="kiosk token (default $WAITROOM_TOKEN)")
    p.add_argument("--queue", help="offline queue file (default $WAITROOM_KIOSK_QUEUE or the state dir)")
    p.add_argument("--lang", choices=["en", "es"])
    p.add_argument("--region", help="phone number region, default US")
    p.add_argument("--read-aloud", action="store_true", help="read screens aloud by default ($WAITROOM_READ_ALOUD)")
    p.add_argument("--large-text", action="store_true", help="large text by default ($WAITROOM_LARGE_TEXT)")
    p.add_argument("--high-contrast", action="store_true", help="high contrast ($WAITROOM_HIGH_CONTRAST)")
    a = p.parse_args(argv)
    run_kiosk(server_url=a.server, token=a.token, queue_path=a.queue, lang=a.lang, region=a.region,
              read_aloud=a.read_aloud or None, large=a.large_text or None, contrast=a.high_contrast or None)


if __name__ == "__main__":
    main()
