"""Driving the system chromium (Debian's chromium + chromium-driver) with selenium, for the dashboard's
browser tests and ``make screenshots``. Nothing is downloaded: the browser and driver are the system's."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CHROMIUM = os.environ.get("DCP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DCP_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (make browser installs chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make install)"
    return None


class Browser:
    """One headless chromium with a fresh profile directory; ``quit()`` removes it."""

    def __init__(self, width: int = 1280, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="dcp-ui-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS + [f"--user-data-dir={self.profile}", f"--window-size={width},{height}"]:
            options.add_argument(flag)
        # An explicit driver path: selenium's driver manager (which would download one) never runs.
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)

    def size(self, width: int, height: int) -> None:
        """Resize the window (a phone is 390 x 844)."""
        self.driver.set_window_size(width, height)

    def full_page_png(self, path: Path, width: int) -> None:
        """Save a screenshot of the whole page at ``width`` CSS pixels (a viewport exactly that size,
        set through the DevTools protocol: a window size would include scrollbars)."""
        def viewport(height: int) -> None:
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

        viewport(800)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        viewport(min(max(height, 400), 8000))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def quit(self) -> None:
        """Close the browser and delete its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
