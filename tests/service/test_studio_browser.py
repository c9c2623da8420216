"""The studio in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium against a real service (`run_embedded`: its own
redis-server, a worker process, the API on a port), with two API keys.

One service and one browser serve the module's tests. Screenshots go to the test's
folder, and to `$GPNN_STUDIO_SCREENSHOTS` when set (docs/images holds some).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from gpnn.config import Settings

from .conftest import CHEAP, png, synthetic, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ALICE, BOB = "alice-key", "bob-key"
CHEAP_FORM = {"patch_size": "5", "depth": "2", "iterations": "1", "coarsest_iterations": "1"}

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (make dev installs them)",
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("studio")


@pytest.fixture(scope="module")
def service(folder):
    from gpnn.service.embedded import run_embedded

    settings = Settings(
        redis_url=None,
        store_url=f"file://{folder}/store",
        workers=1,
        api_keys=f"{ALICE},{BOB}",
        embedded_redis_dir=None,
    )
    with run_embedded(settings) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser(folder):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1500",
        f"--user-data-dir={folder / 'profile'}",
    ):
        options.add_argument(flag)
    downloads = folder / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    # The driver's path is given: Selenium Manager downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def picture(folder) -> Path:
    path = folder / "photo.png"
    path.write_bytes(png(synthetic(48, 64)))
    return path


def screenshot(driver, folder: Path, name: str) -> None:
    driver.save_screenshot(str(folder / name))
    target = os.environ.get("GPNN_STUDIO_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, Path(target) / name)


def open_form(driver, service: str, task: str) -> None:
    """A fresh page, Alice's key given, the form set to `task`."""
    from selenium.webdriver.support.ui import Select

    driver.get(service + "/")
    use_key(driver, ALICE)
    Select(by_css(driver, "#task")[0]).select_by_value(task)


def by_css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def use_key(driver, key: str) -> None:
    field = by_css(driver, "#key")[0]
    field.clear()
    field.send_keys(key)
    by_css(driver, "#key-form button")[0].click()
    wait_until(lambda: "accepted" in by_css(driver, "#key-state")[0].text, 10, "the key")


def fill(driver, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = by_css(driver, f'#params [name="{name}"]')[0]
        field.clear()
        field.send_keys(value)


def loaded_images(driver, selector: str) -> int:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".filter(i => i.complete && i.naturalWidth > 0).length",
        selector,
    )


def job_id(driver) -> str:
    return wait_until(lambda: by_css(driver, "#job-id")[0].text, 10, "the job id")


def finished(driver) -> str:
    """The job's final status; fails at once with the page's error if it shows one."""

    def ended():
        error = by_css(driver, "#form-error")[0]
        assert not error.is_displayed(), error.text
        status = by_css(driver, "#job-status")[0].text
        return status in ("succeeded", "failed") and status

    return wait_until(ended, 90, "the job to end", every_s=0.2)


def test_generate_through_the_page(browser, service, picture, folder):
    browser.get(service + "/")
    # The service needs a key: the page says so and shows nothing else's work.
    wait_until(lambda: "needs an API key" in by_css(browser, "#key-error")[0].text, 10, "ask")
    use_key(browser, ALICE)
    by_css(browser, "#source")[0].send_keys(str(picture))
    wait_until(lambda: "64 x 48 px" in by_css(browser, "#source-info")[0].text, 10, "the size")
    fill(browser, {**CHEAP_FORM, "iterations": "3"})
    samples = by_css(browser, "#samples")[0]
    samples.clear()
    samples.send_keys("2")
    wait_until(lambda: "3 levels (depth 2" in by_css(browser, "#plan")[0].text, 10, "the plan")
    screenshot(browser, folder, "studio-form.png")
    by_css(browser, "#run")[0].click()

    assert finished(browser) == "succeeded"
    # Every level of both samples was previewed while it ran (streamed, then kept).
    wait_until(lambda: loaded_images(browser, "#job-previews img") == 6, 20, "6 previews")
    assert by_css(browser, '#job-previews img[data-via="event"]')  # some came while it ran
    wait_until(lambda: loaded_images(browser, "#job-results img") == 3, 20, "source + 2 samples")
    captions = [c.text for c in by_css(browser, "#job-results figcaption")]
    assert captions[0].startswith("source") and captions[1].startswith("sample 0 (seed 0)")
    screenshot(browser, folder, "studio-generate.png")

    by_css(browser, "#job-results a.download")[0].click()
    identifier = job_id(browser)
    saved = wait_until(
        lambda: [p for p in browser.downloads.glob("*.png") if p.stat().st_size], 20, "download"
    )
    assert saved[0].name == f"{identifier}-0.png"
    image = cv2.imread(str(saved[0]))
    assert image.shape == (48, 64, 3)
    # The list shows the job, with its thumbnail.
    wait_until(lambda: by_css(browser, f'#list tr[data-id="{identifier}"]'), 10, "listed")


def test_a_wide_retargets_previews_stay_within_the_page(browser, service, picture, folder):
    open_form(browser, service, "retarget")
    by_css(browser, "#source")[0].send_keys(str(picture))
    fill(browser, {**CHEAP_FORM, "depth": "1", "width": "2400"})  # 50 times the height
    wait_until(lambda: "output 2400 x 48" in by_css(browser, "#plan")[0].text, 10, "the plan")
    by_css(browser, "#run")[0].click()
    assert finished(browser) == "succeeded"
    wait_until(lambda: loaded_images(browser, "#job-previews img") >= 2, 20, "the previews")
    wait_until(lambda: loaded_images(browser, "#list td img"), 20, "the list's thumbnail")
    wide = browser.execute_script("return document.documentElement.scrollWidth")
    assert wide <= browser.execute_script("return window.innerWidth"), wide


def test_the_list_shows_a_job_running_while_it_runs(browser, service, folder):
    """The job panel follows the job's events; its row in the list follows too (it said
    `queued` until the job had ended)."""
    large = folder / "large.png"
    large.write_bytes(png(synthetic(160, 240, seed=5)))
    open_form(browser, service, "generate")
    by_css(browser, "#source")[0].send_keys(str(large))
    samples = by_css(browser, "#samples")[0]
    samples.clear()
    samples.send_keys("4")  # several seconds on 2 cores
    wait_until(lambda: "about" in by_css(browser, "#plan")[0].text, 10, "the plan")
    by_css(browser, "#run")[0].click()
    identifier = job_id(browser)
    row_status = f'#list tr[data-id="{identifier}"] .status'
    wait_until(lambda: by_css(browser, "#job-status")[0].text == "running", 20, "it to run")
    wait_until(lambda: by_css(browser, row_status)[0].text == "running", 3, "the row to follow")
    assert by_css(browser, "#job-status")[0].text == "running"  # it had not ended meanwhile
    assert finished(browser) == "succeeded"
    wait_until(lambda: by_css(browser, row_status)[0].text == "succeeded", 10, "the row at the end")


def test_each_application_shows_its_own_hint(browser, service):
    from selenium.webdriver.support.ui import Select

    browser.get(service + "/")
    use_key(browser, ALICE)
    for task, hinted in (("generate", True), ("collage", True), ("inpaint", False)):
        Select(by_css(browser, "#task")[0]).select_by_value(task)
        shown = [
            h.get_attribute("data-task") for h in by_css(browser, ".task-help") if h.is_displayed()
        ]
        assert shown == ([task] if hinted else []), (task, shown)
    hint = by_css(browser, '.task-help[data-task="collage"]')[0].get_attribute("textContent")
    assert "seam" in hint


def test_a_collage_run_again_from_the_list_keeps_its_images(browser, service, picture, folder):
    other = folder / "other.png"
    other.write_bytes(png(synthetic(48, 56, seed=3)))
    open_form(browser, service, "collage")
    by_css(browser, "#sources")[0].send_keys(f"{picture}\n{other}")
    fill(browser, {**CHEAP_FORM, "depth": "1", "candidates": "1"})
    wait_until(lambda: "about" in by_css(browser, "#plan")[0].text, 10, "the plan")
    order = "joined left to right: 1. photo.png (64 x 48 px), 2. other.png (56 x 48 px)"
    assert by_css(browser, "#source-info")[0].text == order
    by_css(browser, "#run")[0].click()
    assert finished(browser) == "succeeded"
    first = job_id(browser)
    again = rerun_from_the_list(browser, service)
    for n in (0, 1):
        inputs = [
            httpx.get(f"{service}/v1/jobs/{job}/inputs/sources-{n}", headers={"X-API-Key": ALICE})
            for job in (first, again)
        ]
        assert inputs[0].status_code == inputs[1].status_code == 200
        assert inputs[0].content == inputs[1].content


def test_a_collages_plan_is_of_all_its_sources(browser, service, picture, folder):
    """The plan of a collage is the engine's: its sources side by side at the smallest
    height (64 x 48 and 80 x 40 make 53 + 80 columns, 40 rows)."""
    other = folder / "wide.png"
    other.write_bytes(png(synthetic(40, 80, seed=3)))
    open_form(browser, service, "collage")
    by_css(browser, "#sources")[0].send_keys(f"{picture}\n{other}")
    wait_until(lambda: "output 133 x 40" in by_css(browser, "#plan")[0].text, 10, "the plan")


def test_an_analogys_plan_is_of_its_structure(browser, service, picture, folder):
    """An analogy's output has its structure's size, which the plan shows."""
    structure = folder / "layout.png"
    structure.write_bytes(png(synthetic(40, 80, seed=4)))
    open_form(browser, service, "analogy")
    by_css(browser, "#source")[0].send_keys(str(picture))
    # No plan before the structure is chosen, and no error either (it was a 500).
    waiting = "the plan follows once `structure` is chosen"
    wait_until(lambda: waiting in by_css(browser, "#plan")[0].text, 10, "the wait for it")
    assert by_css(browser, "#form-error")[0].text == ""
    by_css(browser, "#structure")[0].send_keys(str(structure))
    wait_until(lambda: "output 80 x 40" in by_css(browser, "#plan")[0].text, 10, "the plan")


def test_inpaint_with_a_painted_mask(browser, service, picture, folder):
    from selenium.webdriver.common.action_chains import ActionChains

    open_form(browser, service, "inpaint")
    by_css(browser, "#source")[0].send_keys(str(picture))
    canvas = wait_until(
        lambda: [c for c in by_css(browser, "#mask-canvas") if c.is_displayed()], 10, "canvas"
    )[0]
    fill(browser, {**CHEAP_FORM, "depth": "1"})
    # A stroke through the middle, in three pointer events (64 px shown at 384 px: x6).
    ActionChains(browser).move_to_element_with_offset(
        canvas, -60, 0
    ).click_and_hold().move_by_offset(40, 0).move_by_offset(40, 0).release().perform()
    screenshot(browser, folder, "studio-inpaint-painted.png")
    by_css(browser, "#run")[0].click()
    assert finished(browser) == "succeeded"
    wait_until(lambda: loaded_images(browser, "#job-results img") == 2, 20, "source + sample")
    browser.execute_script("document.getElementById('job').scrollIntoView()")
    screenshot(browser, folder, "studio-inpaint.png")

    # The mask the page sent: white along the stroke, black elsewhere.
    identifier = job_id(browser)
    answer = httpx.get(f"{service}/v1/jobs/{identifier}/inputs/mask", headers={"X-API-Key": ALICE})
    assert answer.status_code == 200
    mask = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (48, 64)
    rows, cols = np.nonzero(mask == 255)
    assert set(np.unique(mask)) == {0, 255}
    assert cols.max() - cols.min() >= 12 and rows.max() - rows.min() <= 8  # a horizontal band
    assert mask[:4].max() == 0 and mask[-4:].max() == 0  # nothing far from it
    job = httpx.get(f"{service}/v1/jobs/{identifier}", headers={"X-API-Key": ALICE}).json()
    assert job["task"] == "inpaint" and job["status"] == "succeeded"

    # Opened from the list on a fresh page and run again: the painted hole comes back.
    again = rerun_from_the_list(browser, service)
    answer = httpx.get(f"{service}/v1/jobs/{again}/inputs/mask", headers={"X-API-Key": ALICE})
    rerun_mask = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(rerun_mask, mask)


def rerun_from_the_list(browser, service) -> str:
    """Open the newest job from the list of a fresh page, press "Change parameters and
    run again" and then Run; the new job's id once it has succeeded."""
    browser.get(service + "/")
    use_key(browser, ALICE)

    def open_newest() -> bool:
        # Inside `wait_until`, which tries again when the list was drawn again between
        # finding the button and clicking it (a stale element).
        buttons = by_css(browser, "#list tbody button")
        return bool(buttons) and buttons[0].click() is None

    wait_until(open_newest, 10, "the list")
    old = job_id(browser)
    by_css(browser, "#job-resubmit")[0].click()
    wait_until(lambda: "about" in by_css(browser, "#plan")[0].text, 10, "the plan")
    by_css(browser, "#run")[0].click()
    wait_until(lambda: job_id(browser) != old, 10, "a new job")
    assert finished(browser) == "succeeded"
    return job_id(browser)


def test_bad_input_and_a_second_owner(browser, service, picture, folder):
    browser.get(service + "/")
    alices = httpx.post(
        f"{service}/v1/jobs",
        data={"task": "generate", "params": json.dumps(CHEAP)},
        files={"source": ("p.png", picture.read_bytes())},
        headers={"X-API-Key": ALICE},
    ).json()["id"]
    use_key(browser, ALICE)
    wait_until(lambda: by_css(browser, f'#list tr[data-id="{alices}"]'), 10, "Alice's job")

    # Bad input: the page shows the API's own message.
    by_css(browser, "#source")[0].send_keys(str(picture))
    fill(browser, {"patch_size": "4"})
    by_css(browser, "#run")[0].click()
    expected = httpx.post(
        f"{service}/v1/jobs",
        data={"task": "generate", "params": '{"patch_size": 4}'},
        files={"source": ("p.png", picture.read_bytes())},
        headers={"X-API-Key": ALICE},
    ).json()["detail"]
    wait_until(lambda: by_css(browser, "#form-error")[0].text == expected, 10, expected)

    # A file the browser cannot read in place of the photo: the photo's size and plan go.
    notes = folder / "notes.png"
    notes.write_text("not a picture")
    fill(browser, {"patch_size": "5"})
    wait_until(lambda: "64 x 48 px" in by_css(browser, "#source-info")[0].text, 10, "the size")
    by_css(browser, "#source")[0].send_keys(str(notes))
    wait_until(
        lambda: "notes.png is not an image" in by_css(browser, "#form-error")[0].text, 10, ""
    )
    wait_until(lambda: by_css(browser, "#source-info")[0].text == "", 10, "no stale size")
    assert by_css(browser, "#plan")[0].text == ""

    use_key(browser, BOB)
    wait_until(lambda: "nothing yet" in by_css(browser, "#list")[0].text, 10, "an empty list")
    assert by_css(browser, "#list tr.item") == []
    assert alices not in browser.page_source
    screenshot(browser, folder, "studio-second-owner.png")
