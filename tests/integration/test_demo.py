"""``mattekit demo`` in a real headless browser (Debian's chromium through selenium): upload a
photo, click on it, and check the matte the page returns against the session's own prediction
for the click the page reports. Saves a screenshot (``MATTEKIT_DEMO_SCREENSHOT`` names where;
the README's picture is made that way)."""

import os
import re
import shutil
import socket
import urllib.request

import cv2
import numpy as np
import pytest

from mattekit.data.io import unit_to_uint8
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.interactive import InteractiveSession
from mattekit.inference.prompts import UserPrompt

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
#: Chromium as this machine's closed network wants it (no background connections, no sandbox
#: as root).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,900",
)  # fmt: skip
CLICK = re.compile(r"(positive|negative) click at \((\d+), (\d+)\)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(tiny_checkpoint):
    """The demo of a tiny ZIM served on a free port: ``(url, session)``."""
    from mattekit.demo.app import build_demo

    checkpoint = os.environ.get("MATTEKIT_DEMO_CKPT") or tiny_checkpoint("zim")
    session = InteractiveSession(CheckpointModel(checkpoint))
    demo = build_demo(session, "ZIM")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", session
    demo.close()


def test_upload_click_and_download_the_cutout(browser, page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    url, session = page
    photo = np.full((120, 200, 3), 50, np.uint8)
    photo[30:95, 55:150] = (40, 170, 230)
    cv2.circle(photo, (100, 62), 18, (250, 240, 90), -1)
    cv2.imwrite(str(tmp_path / "photo.png"), photo[..., ::-1])
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    upload = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#photo input")))
    upload.send_keys(str(tmp_path / "photo.png"))
    shown = wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, "#photo img")))
    wait.until(lambda _: session.encodings == 1)

    ActionChains(browser).move_to_element_with_offset(shown, 5, 3).click().perform()
    info = wait.until(seen.text_to_be_present_in_element((By.ID, "prompt-info"), "click at"))
    assert info
    link = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#download a")))
    text = browser.find_element(By.ID, "prompt-info").text
    clicks = [(int(x), int(y), int(kind == "positive")) for kind, x, y in CLICK.findall(text)]
    assert len(clicks) == 1 and clicks[0][2] == 1
    x, y, _ = clicks[0]
    assert abs(x - 105) <= 3 and abs(y - 63) <= 3  # the element's centre plus the offset

    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
        rgba = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (120, 200, 4)
    expected = unit_to_uint8(session.predict(UserPrompt(points=((x, y, 1),))))
    assert np.array_equal(rgba[..., 3], expected)
    assert session.encodings == 1  # the click ran the decoder only
    browser.save_screenshot(os.environ.get("MATTEKIT_DEMO_SCREENSHOT") or tmp_path / "demo.png")
