"""`spgnet serve` in a real browser: headless Chromium (the system's /usr/bin/chromium and
/usr/bin/chromedriver through Selenium; nothing is downloaded) loads the page served with the
tiny checkpoint, uploads a synthetic person, picks a gallery pose and runs the transfer: the
result image has the model's size and the very pixels of the handler; a flat grey photo
shows the one-line "no person" message; every URL the page requested is on this machine.

Without Chromium/chromedriver the tests are skipped on a developer machine and fail where
SPGNET_REQUIRE_BROWSER=1 (CI, see .ci/run)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from helpers import SIZE

H, W = SIZE
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_S = 60

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")]


def browser_paths() -> tuple[str, str]:
    """``(chromium, chromedriver)``; skip (or fail under SPGNET_REQUIRE_BROWSER=1) when either is missing."""
    chromium = (CHROMIUM if os.access(CHROMIUM, os.X_OK)
                else shutil.which("chromium") or shutil.which("chromium-browser"))
    driver = CHROMEDRIVER if os.access(CHROMEDRIVER, os.X_OK) else shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    missing = ", ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
    message = f"browser test did not run: chromium/chromedriver not installed (missing: {missing})"
    if os.environ.get("SPGNET_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message}; SPGNET_REQUIRE_BROWSER=1 requires them (apt-get install chromium chromium-driver)",
                    pytrace=False)
    pytest.skip(message)


def make_driver(chromium: str, chromedriver: str, width: int = 1400, height: int = 1300):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)  # an explicit driver: no Selenium Manager


def open_page(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, TIMEOUT_S).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#source-photo input[type=file]")))
    WebDriverWait(driver, TIMEOUT_S).until(EC.element_to_be_clickable((By.ID, "transfer-button")))


def upload_source(driver, photo: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, "#source-photo input[type=file]").send_keys(str(photo))
    WebDriverWait(driver, TIMEOUT_S).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#source-photo img")))


def pick_gallery_pose(driver, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element(By.CSS_SELECTOR, "#gallery-pose input")
    box.click()
    WebDriverWait(driver, TIMEOUT_S).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f"[role=option][aria-label='{name}']"))).click()
    WebDriverWait(driver, TIMEOUT_S).until(lambda d: box.get_attribute("value") == name)


def click_transfer(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "transfer-button").click()


def wait_for_result(driver):
    """The result ``<img>`` once it is loaded (natural size known)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def loaded(d):
        imgs = d.find_elements(By.CSS_SELECTOR, "#result img")
        ok = imgs and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", imgs[0])
        return imgs[0] if ok else False

    return WebDriverWait(driver, TIMEOUT_S).until(loaded)


def wait_for_error(driver) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def toast(d):
        texts = [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, "[data-testid=toast-text]")]
        return next((t for t in texts if t), False)

    return WebDriverWait(driver, TIMEOUT_S).until(toast)


def requested_urls(driver) -> set[str]:
    """Every URL the page asked for: resource timing entries and Chromium's network log."""
    urls = set(driver.execute_script(
        "return performance.getEntries().filter(e => e.entryType === 'navigation' || e.entryType === 'resource')"
        ".map(e => e.name)"))
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.add(message["params"]["url"])
    return urls


def external(urls: set[str]) -> list[str]:
    """The URLs not served by this machine (data: and blob: URLs are in the page itself)."""
    out = []
    for url in urls:
        parts = urlparse(url)
        if parts.scheme in ("data", "blob", "about", "chrome-extension"):
            continue
        if parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname not in LOCAL_HOSTS:
            out.append(url)
    return sorted(out)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    chromium, chromedriver = browser_paths()
    driver = make_driver(chromium, chromedriver)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tiny_run, browser):
    from spgnet.apps.serve import ServeHandlers, build_app, launch

    with ServeHandlers(tiny_run["ckpt"], "cpu") as handlers:
        app = build_app(handlers)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = launch(app, port=port)
        yield {"url": url, "handlers": handlers}
        app.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    base = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(21)
    person = render_person(sample_identity(rng), sample_pose(rng, view="front", zoom=False), (384, 256))["image"]
    Image.fromarray(person).save(base / "person.png")
    Image.fromarray(np.full((256, 176, 3), 128, np.uint8)).save(base / "grey.png")
    return {"person": base / "person.png", "grey": base / "grey.png"}


# --------------------------------------------------------------------------- tests


def test_transfer_in_the_browser(browser, served, photos, tmp_path):
    open_page(browser, served["url"])
    upload_source(browser, photos["person"])
    pick_gallery_pose(browser, "hands-on-hips")
    click_transfer(browser)
    img = wait_for_result(browser)
    size = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    assert size == [W, H]
    with urllib.request.urlopen(img.get_attribute("src"), timeout=30) as response:  # the PNG the page shows
        shown = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
    expected = served["handlers"].transfer(str(photos["person"]), "gallery", "hands-on-hips", seed=0)
    np.testing.assert_array_equal(shown, expected.result)
    from selenium.webdriver.common.by import By

    assert browser.find_element(By.ID, "transfer-info").text.startswith(f"{H}x{W} result, seed 0")
    browser.save_screenshot(str(tmp_path / "serve.png"))
    assert (tmp_path / "serve.png").stat().st_size > 10_000
    urls = requested_urls(browser)
    assert any("/gradio_api/" in u for u in urls)  # the log saw the page's own API calls
    assert external(urls) == [], external(urls)


def test_no_person_message_in_the_browser(browser, served, photos):
    from selenium.webdriver.common.by import By

    open_page(browser, served["url"])
    upload_source(browser, photos["grey"])
    click_transfer(browser)
    message = wait_for_error(browser)
    assert message == "source photo grey.png: no person found in this photo"
    assert "Traceback" not in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "#result img")
    assert external(requested_urls(browser)) == []
