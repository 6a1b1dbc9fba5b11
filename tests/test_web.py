"""The web page (F17) in a real browser: Debian's headless chromium driven by Selenium, against
the page's server, which calls a real speakerlink server through the SDK."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, make_config
from speakerlink_server.main import start_server

pytest.importorskip("starlette")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from speakerlink.web import create_app  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving_page(address: str, connection: dict | None = None) -> Iterator[str]:
    """The page's server on a free loopback port, calling the speakerlink server at `address`."""
    import uvicorn

    port = free_port()
    app = create_app(address, connection)
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not web.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        web.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def page(server) -> Iterator[str]:
    with serving_page(server.config.address) as url:
        yield url


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.downloads = tmp_path / "downloads"
    try:
        yield driver
    finally:
        driver.quit()


def test_the_sample_clips_come_out_as_one_timeline_with_a_colour_per_person(page: str, browser, samples) -> None:
    browser.get(page)
    clips = [samples[name] for name in ("meeting.wav", "call.mp3", "interview.flac")]
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in clips))
    WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "start"))).click()
    WebDriverWait(browser, 180).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#legend li")
                                      or b.find_element(By.ID, "job-error").is_displayed())
    assert not browser.find_element(By.ID, "job-error").is_displayed(), browser.find_element(By.ID, "job-error").text
    assert "?job=" in browser.current_url  # a reload finds the job again

    people = [li.get_attribute("data-speaker") for li in browser.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert len(people) == 5  # alice, bob, carol, dave and eric
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline svg")
    assert [r.get_attribute("data-clip") for r in rows] == ["meeting.wav", "call.mp3", "interview.flac"]
    colours: dict[str, set[str]] = {}
    clips_of: dict[str, set[str]] = {}
    for row in rows:
        for bar in row.find_elements(By.CSS_SELECTOR, "rect"):
            colours.setdefault(bar.get_attribute("data-speaker"), set()).add(bar.get_attribute("fill"))
            clips_of.setdefault(bar.get_attribute("data-speaker"), set()).add(row.get_attribute("data-clip"))
    assert set(colours) == set(people) and all(len(c) == 1 for c in colours.values())  # one colour per person
    assert len({c.pop() for c in colours.values()}) == 5  # and no two people share one
    assert sum(len(c) > 1 for c in clips_of.values()) >= 3  # alice, bob and dave are linked across clips

    browser.refresh()  # the job lives in the URL
    WebDriverWait(browser, 30).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#legend li")) == 5)
    (ROOT / "docs").mkdir(exist_ok=True)
    browser.save_screenshot(str(ROOT / "docs" / "web.png"))

    browser.find_element(By.CSS_SELECTOR, "#exports button[data-format=json]").click()
    deadline = time.monotonic() + 20
    while not list(browser.downloads.glob("*.json")):
        assert time.monotonic() < deadline, "the JSON export never arrived"
        time.sleep(0.1)
    exported = json.loads(next(browser.downloads.glob("*.json")).read_text())
    job_id = browser.current_url.split("?job=")[1]
    assert exported["job_id"] == job_id and len(exported["speakers"]) == 5


def test_a_file_that_is_not_audio_is_refused_plainly(page: str, browser, tmp_path: Path) -> None:
    notes = tmp_path / "notes.wav"
    notes.write_text("minutes of the meeting, not a recording of it\n" * 50)
    browser.get(page)
    browser.find_element(By.ID, "files").send_keys(str(notes))
    WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "start"))).click()
    error = WebDriverWait(browser, 60).until(ready.visibility_of_element_located((By.ID, "upload-error")))
    assert "NOT_AUDIO" in error.text and "notes.wav" in error.text
    assert "?job=" not in browser.current_url


def test_a_file_over_the_limit_is_refused_before_it_uploads(page: str, browser, tmp_path: Path) -> None:
    big = tmp_path / "long.wav"
    big.write_bytes(b"\0" * (8 * 1024 * 1024 + 1))  # the test server takes 8 MiB a file
    browser.get(page)
    WebDriverWait(browser, 10).until(lambda b: "MB each" in b.find_element(By.ID, "limits").text)
    browser.find_element(By.ID, "files").send_keys(str(big))
    error = browser.find_element(By.ID, "upload-error")
    assert error.is_displayed() and "long.wav" in error.text
    assert not browser.find_element(By.ID, "start").is_enabled()


def start_job(browser, page: str, clip: Path) -> None:
    browser.get(page)
    browser.find_element(By.ID, "files").send_keys(str(clip))
    WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "start"))).click()
    WebDriverWait(browser, 60).until(lambda b: "%" in b.find_element(By.ID, "progress-text").text)


def test_a_cancelled_job_says_so(page: str, browser, long_clip: Path) -> None:
    start_job(browser, page, long_clip)
    browser.find_element(By.ID, "cancel").click()
    error = WebDriverWait(browser, 60).until(ready.visibility_of_element_located((By.ID, "job-error")))
    assert "CANCELLED" in error.text and not browser.find_elements(By.CSS_SELECTOR, "#legend li")


def test_the_page_reconnects_when_the_service_comes_back(browser, long_clip: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", port=free_port())
    first = start_server(config)
    with serving_page(config.address) as url:
        try:
            start_job(browser, url, long_clip)
        finally:
            first.stop(grace=0)  # the job goes back to the queue
        WebDriverWait(browser, 30).until(lambda b: "reconnecting" in b.find_element(By.ID, "progress-text").text)
        second = start_server(config)  # same data dir, same port
        try:
            WebDriverWait(browser, 180).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#legend li"))
        finally:
            second.stop(grace=0)
    assert not browser.find_element(By.ID, "job-error").is_displayed()


def test_a_transcribed_job_shows_its_transcript(browser, samples, tmp_path: Path) -> None:
    import hashlib

    from fake_assemblyai import FakeAssemblyAI
    from test_assemblyai import KEY, reference_utterances

    fake = FakeAssemblyAI(KEY).start()
    utterances = reference_utterances(samples)["call.mp3"]
    fake.utterances[hashlib.sha256(samples["call.mp3"].read_bytes()).hexdigest()] = utterances
    running = start_server(make_config(tmp_path / "data", assemblyai_api_key=KEY, assemblyai_base_url=fake.url,
                                       assemblyai_poll_seconds=0.05, chunk_seconds=30.0))
    try:
        with serving_page(running.config.address) as url:
            browser.get(url)
            WebDriverWait(browser, 10).until(ready.visibility_of_element_located((By.ID, "transcribe-option")))
            browser.find_element(By.ID, "files").send_keys(str(samples["call.mp3"]))
            WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "start"))).click()
            WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#transcript li"))
            lines = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#transcript li")]
    finally:
        running.stop(grace=0)
        fake.stop()
    assert len(lines) == len(utterances) and all(line.startswith("call.mp3 ") for line in lines)
    assert [line.split(": ", 1)[1] for line in lines] == [u["text"] for u in utterances]


def test_with_tokens_each_person_sees_their_own_recent_jobs_and_the_token_stays_out_of_addresses(
        browser, samples, tmp_path: Path) -> None:
    import secrets

    from certs import Authority
    from selenium.webdriver.common.keys import Keys
    from speakerlink import Client
    from test_security import write_tenants

    ca = Authority(tmp_path, "ca")
    server_pem = ca.issue("server", server=True)
    acme, globex = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tenants = write_tenants(tmp_path / "tenants.toml", {"acme": [acme], "globex": [globex]})
    running = start_server(make_config(tmp_path / "data", tls_cert=str(server_pem.cert), tls_key=str(server_pem.key),
                                       tenants_file=str(tenants)))
    try:
        address = f"localhost:{running.config.port}"
        jobs = {}
        for name, token in (("acme", acme), ("globex", globex)):
            with Client(address, tls=ca.pem, token=token, timeout=60) as client:
                jobs[name] = client.diarize([samples["call.mp3"]]).job_id
        with serving_page(address, {"tls": ca.pem}) as url:
            browser.get(url)
            WebDriverWait(browser, 20).until(lambda b: "AUTH_REQUIRED" in b.find_element(By.ID, "recent").text)
            browser.find_element(By.ID, "token").send_keys(acme, Keys.TAB)  # the page reloads with it
            WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#recent a"))
            listed = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#recent a")]
            assert [href.split("?job=")[1] for href in listed] == [jobs["acme"]]
            assert acme not in browser.current_url and all(acme not in href for href in listed)
    finally:
        running.stop(grace=0)


def test_overlapped_speech_shows_as_bars_stacked_at_the_same_time(page: str, browser, samples, tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    first, rate = sf.read(samples["meeting.wav"], dtype="float32")
    second, _ = sf.read(samples["interview.flac"], dtype="float32")
    n = min(len(first), len(second))
    mixed = tmp_path / "crosstalk.wav"  # alone for half, then two people at once
    sf.write(mixed, np.concatenate([first[: n // 2], 0.5 * (first[n // 2 : n] + second[n // 2 : n])]), rate)
    browser.get(page)
    browser.find_element(By.ID, "files").send_keys(str(mixed))
    WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "start"))).click()
    WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#legend li"))
    bars = [(float(r.get_attribute("x")), float(r.get_attribute("x")) + float(r.get_attribute("width")),
             float(r.get_attribute("y")), r.get_attribute("data-speaker"))
            for r in browser.find_elements(By.CSS_SELECTOR, "#timeline rect")]
    stacked = [(a, b) for i, a in enumerate(bars) for b in bars[i + 1 :]
               if a[3] != b[3] and min(a[1], b[1]) > max(a[0], b[0])]
    assert stacked and all(a[2] != b[2] for a, b in stacked)  # at the same time, on lanes of their own
