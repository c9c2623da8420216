"""The README's picture of the studio: two samples of the demo photo, made through the page.

Starts the embedded service (its own Redis, one worker, a local store in a
temporary folder), drives Debian's chromium with Selenium as a user would
(choose the photo, ask for 2 samples at the defaults, run) and saves the page
once the job has succeeded.

Examples
--------
    .venv/bin/python bench/studio_screenshot.py --out docs/images/studio-demo.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from gpnn.config import Settings
from gpnn.service.embedded import run_embedded

DEMO = Path(__file__).resolve().parents[1] / "core" / "data" / "demo.jpg"
WAIT_S = 300


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"gave up waiting for {what}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--photo", type=Path, default=DEMO)
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            redis_url=None,
            store_url=f"file://{folder}/store",
            workers=1,
            api_keys="",
            embedded_redis_dir=None,
        )
        with run_embedded(settings) as base_url:
            options = webdriver.ChromeOptions()
            options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
            for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1900"):
                options.add_argument(flag)
            driver = webdriver.Chrome(
                service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                options=options,
            )
            try:
                css = lambda selector: driver.find_elements(By.CSS_SELECTOR, selector)  # noqa: E731
                driver.get(base_url + "/")
                css("#source")[0].send_keys(str(args.photo.resolve()))
                wait_for(lambda: "px" in css("#source-info")[0].text, "the photo")
                css("#samples")[0].clear()
                css("#samples")[0].send_keys(str(args.samples))
                css("#run")[0].click()
                status = wait_for(
                    lambda: (
                        css("#job-status")[0].text in ("succeeded", "failed")
                        and css("#job-status")[0].text
                    ),
                    "the job",
                )
                if status != "succeeded":
                    raise SystemExit(f"the job {status}")
                wait_for(
                    lambda: driver.execute_script(
                        "return [...document.querySelectorAll('#job-results img')]"
                        ".every(i => i.complete && i.naturalWidth > 0)"
                        " && document.querySelectorAll('#job-results img').length > 1"
                    ),
                    "the samples to load",
                )
                driver.save_screenshot(str(args.out))
            finally:
                driver.quit()
    print(args.out)


if __name__ == "__main__":
    main()
