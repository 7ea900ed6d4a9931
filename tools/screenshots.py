"""Regenerate docs/dashboard.png (``make screenshots``): the dashboard's overview of an emulator with the
built-in example seed, after a CSV upload with a bad row, seen in the system chromium at desktop width.

    python tools/screenshots.py [--out docs/dashboard.png] [--width 1280] [--path /_emulator/ui]
                                [--wait-for CSS]   (a page drawn by script: wait for this element first)
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser helper shared with the browser tests

CSV = b"customerId,full_name,orders\ncrm-2001,Edsger Dijkstra,7\ncrm-2002,Barbara Liskov,many\n"


def main(argv: list[str] | None = None) -> int:
    """Serve a seeded emulator, give it some history, and save a screenshot of one dashboard page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--path", default="/_emulator/ui")
    parser.add_argument("--wait-for", help="CSS selector of an element to wait for before the shot")
    args = parser.parse_args(argv)

    from browser import Browser, browser_missing

    from dcp_emulator.config import Config
    from dcp_emulator.server import EmulatorServer

    missing = browser_missing()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 1
    server = EmulatorServer(Config(host="127.0.0.1", port=0, seed=["example"], log_requests=False)).start()
    browser = None
    try:
        url = server.url
        # Some history to show: an upload with one rejected row (through the dashboard's own form).
        requests.post(f"{url}/_emulator/ui/tables/678/upload", files={"file": ("crm-update.csv", CSV, "text/csv")},
                      timeout=30).raise_for_status()
        requests.post(f"{url}/_emulator/uploads/wait", json={"timeout": 30}, timeout=60).raise_for_status()
        browser = Browser(width=args.width)
        browser.driver.get(url + args.path)
        if args.wait_for:
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(browser.driver, 30).until(lambda d: d.find_elements("css selector", args.wait_for))
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        browser.full_page_png(out, args.width)
        print(f"wrote {out}")
    finally:
        if browser is not None:
            browser.quit()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
