"""``mattekit demo`` in a real headless browser (Debian's chromium through selenium): upload a
photo, click on it, and check the matte the page returns against the session's own prediction
for the click the page reports; two windows at once each get their own photo's matte. Saves a
screenshot (``MATTEKIT_DEMO_SCREENSHOT`` names where; the README's picture is made that way)."""

import os
import re
import shutil
import socket
import urllib.request

import cv2
import numpy as np
import pytest

from mattekit.atomic_files import unit_to_uint8
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.prompts.user import UserPrompt

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


def serve(checkpoint, folder, **launch):
    """The demo of ``checkpoint`` on a free port: ``(demo, url, sessions)``."""
    from mattekit.demo.app import DemoActions, build_demo
    from mattekit.demo.sessions import SessionStore

    sessions = SessionStore(CheckpointModel(checkpoint), folder)
    demo = build_demo(DemoActions(sessions), "ZIM")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch)  # fmt: skip
    return demo, f"http://127.0.0.1:{port}/", sessions


@pytest.fixture
def page(tiny_checkpoint, tmp_path):
    """The demo of a tiny ZIM: ``(url, sessions)``."""
    checkpoint = os.environ.get("MATTEKIT_DEMO_CKPT") or tiny_checkpoint("zim")
    demo, url, sessions = serve(checkpoint, tmp_path / "downloads")
    yield url, sessions
    demo.close()


def upload(browser, url: str, photo: np.ndarray, path) -> object:
    """Open the page, upload ``photo`` (H x W x 3 RGB, written to ``path``) and wait until it
    is encoded; the shown photo's element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    cv2.imwrite(str(path), photo[..., ::-1])
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    field = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#photo input")))
    field.send_keys(str(path))
    shown = wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, "#photo img")))
    wait.until(seen.text_to_be_present_in_element((By.ID, "prompt-info"), "no prompt yet"))
    return shown


def click_and_download(browser, shown, dx: int, dy: int) -> tuple[tuple[int, int], np.ndarray]:
    """Click ``(dx, dy)`` from the photo's centre; the click the page reports and the
    downloaded cut-out (H x W x 4, BGRA)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    ActionChains(browser).move_to_element_with_offset(shown, dx, dy).click().perform()
    wait.until(seen.text_to_be_present_in_element((By.ID, "prompt-info"), "click at"))
    link = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#download a")))
    text = browser.find_element(By.ID, "prompt-info").text
    clicks = [(int(x), int(y), int(kind == "positive")) for kind, x, y in CLICK.findall(text)]
    assert len(clicks) == 1 and clicks[0][2] == 1
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
        rgba = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    return clicks[0][:2], rgba


def test_upload_click_and_download_the_cutout(browser, page, tmp_path):
    url, sessions = page
    photo = np.full((120, 200, 3), 50, np.uint8)
    photo[30:95, 55:150] = (40, 170, 230)
    cv2.circle(photo, (100, 62), 18, (250, 240, 90), -1)
    shown = upload(browser, url, photo, tmp_path / "photo.png")
    (x, y), rgba = click_and_download(browser, shown, 5, 3)
    assert abs(x - 105) <= 3 and abs(y - 63) <= 3  # the element's centre plus the offset
    assert rgba.shape == (120, 200, 4)
    (session,) = sessions.sessions()
    expected = unit_to_uint8(session.interactive.predict(UserPrompt(points=((x, y, 1),))))
    assert np.array_equal(rgba[..., 3], expected)
    assert session.interactive.encodings == 1  # the click ran the decoder only
    browser.save_screenshot(os.environ.get("MATTEKIT_DEMO_SCREENSHOT") or tmp_path / "demo.png")


def test_two_windows_each_get_their_own_photo(browser, page, tmp_path):
    """Window A uploads a red photo, window B a blue one of another size, then A clicks: A gets
    its own photo's cut-out, not B's (one server, one checkpoint, two sessions)."""
    url, sessions = page
    red, blue = (
        np.full((64, 80, 3), (220, 20, 20), np.uint8),
        np.full((48, 64, 3), (20, 20, 220), np.uint8),
    )
    window_a = browser.current_window_handle
    shown_a = upload(browser, url, red, tmp_path / "red.png")
    browser.switch_to.new_window("window")
    window_b = browser.current_window_handle
    shown_b = upload(browser, url, blue, tmp_path / "blue.png")
    results = {}
    for name, window, shown in (("a", window_a, shown_a), ("b", window_b, shown_b)):
        browser.switch_to.window(window)
        results[name] = click_and_download(browser, shown, 0, 0)
    for name, photo in (("a", red), ("b", blue)):
        (x, y), rgba = results[name]
        assert rgba.shape[:2] == photo.shape[:2]
        colour = np.median(rgba[..., 2::-1], axis=(0, 1))  # BGRA as decoded
        assert colour.argmax() == photo[0, 0].argmax()  # red for A, blue for B
        (session,) = [s for s in sessions.sessions() if s.interactive.image.shape == photo.shape]
        expected = unit_to_uint8(session.interactive.predict(UserPrompt(points=((x, y, 1),))))
        assert np.array_equal(rgba[..., 3], expected)


def test_a_file_over_the_size_limit_is_refused_on_the_page(browser, tiny_checkpoint, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    demo, url, sessions = serve(tiny_checkpoint("zim"), tmp_path / "d", max_file_size=1024)
    try:
        noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "noise.png"), noise)  # about 12 KB
        wait = WebDriverWait(browser, 60)
        browser.get(url)
        field = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#photo input")))
        field.send_keys(str(tmp_path / "noise.png"))
        refused = "exceed the maximum allowed size of 1.0 Kb"
        wait.until(seen.text_to_be_present_in_element((By.TAG_NAME, "body"), refused))
        assert '"noise.png"' in browser.find_element(By.TAG_NAME, "body").text
        assert len(sessions) == 0  # nothing reached the callbacks
    finally:
        demo.close()


def test_a_file_that_is_no_image_gets_the_readers_message(browser, page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    url, sessions = page
    (tmp_path / "junk.png").write_bytes(np.random.default_rng(0).bytes(4096))
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    field = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#photo input")))
    field.send_keys(str(tmp_path / "junk.png"))
    line = (By.ID, "prompt-info")
    wait.until(seen.text_to_be_present_in_element(line, "junk.png: not a readable image"))
    assert str(tmp_path) not in browser.find_element(*line).text and len(sessions) == 0
