"""The web page in a real browser: Debian's chromium driven headless by Selenium through chromium-driver (never a
downloaded browser). Load the page, make a voice from a reference clip, speak with the tiny models and check that
the <audio> element holds and plays non-empty audio; a screenshot is kept in the test's tmp folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs the serve extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (dev extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from edgevoice.server.app import create_app  # noqa: E402
from edgevoice.server.background import BackgroundServer  # noqa: E402
from edgevoice.server.config import ServerConfig  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
pytestmark = pytest.mark.skipif(CHROMIUM is None or not Path(DRIVER).exists(),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1000,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_server(fixture_bundle, emotivoice_bundle, tmp_path_factory):
    config = ServerConfig({"ev": emotivoice_bundle[0], "gs": fixture_bundle[0]},
                          tmp_path_factory.mktemp("voices"), workers=1, threads=1)
    with BackgroundServer(create_app(config)) as server:
        yield server


def _status(driver, element_id: str, prefix: str, timeout: float = 60) -> str:
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.ID, element_id).text.startswith(prefix)
        or "error" in d.find_element(By.ID, element_id).get_attribute("class"))
    text = driver.find_element(By.ID, element_id).text
    assert text.startswith(prefix), text
    return text


def _speak(driver, text: str, options: str = "{}") -> dict:
    driver.find_element(By.ID, "text").clear()
    driver.find_element(By.ID, "text").send_keys(text)
    driver.execute_script("document.getElementById('options').value = arguments[0]", options)
    driver.find_element(By.ID, "speak").click()
    _status(driver, "status", "Done")
    # the take is handed to <audio>: wait for its metadata, play it, and see the playhead move
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const audio = document.getElementById('player');
        const report = () => done({duration: audio.duration, time: audio.currentTime, src: audio.src,
                                   download: !document.getElementById('download').hidden});
        const play = () => audio.play().then(() => setTimeout(report, 400), (e) => done({error: String(e)}));
        if (audio.readyState >= 1) play(); else audio.addEventListener('loadedmetadata', play, {once: true});
    """)


def test_page_speaks_makes_a_voice_and_plays_audio(browser, page_server, gpt_sovits_set, tmp_path):
    browser.get(page_server.url + "/")
    WebDriverWait(browser, 30).until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
    Select(browser.find_element(By.ID, "model")).select_by_value("ev")
    WebDriverWait(browser, 30).until(lambda d: len(Select(d.find_element(By.ID, "voice")).options) > 1)
    browser.find_element(By.ID, "prompt").send_keys("Happy")
    played = _speak(browser, "Hello from the browser. This is a test.")
    assert "error" not in played, played
    assert played["duration"] > 0.5 and played["time"] > 0 and played["src"].startswith("blob:") and played["download"]

    Select(browser.find_element(By.ID, "model")).select_by_value("gs")
    audio = gpt_sovits_set / "audio"
    browser.find_element(By.ID, "voice-name").send_keys("from-page")
    browser.find_element(By.ID, "voice-file").send_keys(str(audio / "ref_en.wav"))
    browser.find_element(By.ID, "voice-text").send_keys((audio / "ref_en.txt").read_text().strip())
    browser.find_element(By.ID, "create-voice").click()
    _status(browser, "voice-status", "Voice from-page created")
    assert Select(browser.find_element(By.ID, "voice")).first_selected_option.get_attribute("value") == "from-page"
    browser.find_element(By.ID, "prompt").clear()
    played = _speak(browser, "Nice to meet you.", '{"max_tokens": 20, "seed": 1}')
    assert "error" not in played and played["duration"] > 0.3 and played["time"] > 0, played

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
