"""The web page (F17) in a real browser: Debian's headless chromium driven by Selenium, against
the page's server, which calls a real speakerlink server through the SDK. Its HTTP rules
(hosts, cross-site requests, uploads, tokens) are checked with plain requests.

SPEAKERLINK_WEB_SCREENSHOT=PATH makes the sample-clips test save its page there too
(scripts/web_screenshot.py writes docs/web.png so)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import make_config, start_server

pytest.importorskip("starlette")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from speakerlink import Client  # noqa: E402
from speakerlink.ids import JOB_ID  # noqa: E402
from speakerlink.v1 import speakerlink_pb2 as pb  # noqa: E402
from speakerlink.web import create_app  # noqa: E402
from speakerlink.web.guard import check_host  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving_page(address: str, connection: dict | None = None, **options) -> Iterator[str]:
    """The page's server on a free loopback port, calling the speakerlink server at `address`."""
    import uvicorn

    port = free_port()
    app = create_app(address, connection, **options)
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


class ErrorLog(logging.Handler):
    """The errors the page's server logs (tracebacks included) while it is entered."""

    LOGGERS = ("uvicorn.error", "speakerlink.web")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ErrorLog:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


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


def test_the_sample_clips_come_out_as_one_timeline_with_a_colour_per_person(page: str, browser, samples,
                                                                          tmp_path: Path) -> None:
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
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline svg[data-clip]")
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
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#timeline .axis-row text")]
    assert len(labels) >= 3 and labels[0] in ("0 s", "0:00")  # one time axis under the rows
    browser.save_screenshot(str(tmp_path / "web.png"))
    if os.environ.get("SPEAKERLINK_WEB_SCREENSHOT"):
        shutil.copyfile(tmp_path / "web.png", os.environ["SPEAKERLINK_WEB_SCREENSHOT"])

    def ends() -> dict[str, float]:  # where each row's last bar ends, in the rows' common units
        return {row.get_attribute("data-clip"): max(float(r.get_attribute("x")) + float(r.get_attribute("width"))
                                                    for r in row.find_elements(By.CSS_SELECTOR, "rect"))
                for row in browser.find_elements(By.CSS_SELECTOR, "#timeline svg[data-clip]")}

    shared = ends()  # one scale: the longest clip reaches the right, the others stop short of it
    browser.find_element(By.ID, "fit").click()
    fitted = ends()
    shortest = min(shared, key=shared.get)
    assert fitted[shortest] > shared[shortest] + 50 and max(fitted.values()) - min(fitted.values()) < 30
    assert not browser.find_elements(By.CSS_SELECTOR, "#timeline .axis-row")  # each row has its own axis now
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline svg[data-clip] .axis")) == 3

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
    WebDriverWait(browser, 10).until(lambda b: "of 8 MiB each" in b.find_element(By.ID, "limits").text)  # as `info` says
    browser.find_element(By.ID, "files").send_keys(str(big))
    error = browser.find_element(By.ID, "upload-error")
    assert error.is_displayed() and "long.wav is 8.0 MiB; the service takes up to 8 MiB a file" in error.text
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


@dataclasses.dataclass
class Tenants:
    """A server with TLS and two tenants' tokens, its address and CA, and a page over it."""

    address: str
    ca: bytes
    tokens: dict[str, str]
    page: str


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    from certs import Authority
    from test_security import write_tenants

    folder = tmp_path_factory.mktemp("tenants")
    ca = Authority(folder, "ca")
    server_pem = ca.issue("server", server=True)
    tokens = {"acme": secrets.token_urlsafe(32), "globex": secrets.token_urlsafe(32)}
    listed = write_tenants(folder / "tenants.toml", {name: [token] for name, token in tokens.items()})
    running = start_server(make_config(folder / "data", tls_cert=str(server_pem.cert), tls_key=str(server_pem.key),
                                       tenants_file=str(listed)))
    address = f"localhost:{running.config.port}"
    try:
        with serving_page(address, {"tls": ca.pem}, upload_seconds=2.0) as url:
            yield Tenants(address, ca.pem, tokens, url)
    finally:
        running.stop(grace=0)


def test_with_tokens_each_person_sees_their_own_recent_jobs_and_the_token_stays_out_of_addresses(
        browser, samples, tenants: Tenants) -> None:
    from selenium.webdriver.common.keys import Keys
    from speakerlink import Client

    jobs = {}
    for name, token in tenants.tokens.items():
        with Client(tenants.address, tls=tenants.ca, token=token, timeout=60) as client:
            jobs[name] = client.diarize([samples["call.mp3"]]).job_id
    acme = tenants.tokens["acme"]
    browser.get(tenants.page)
    WebDriverWait(browser, 20).until(lambda b: "AUTH_REQUIRED" in b.find_element(By.ID, "upload-error").text)
    browser.find_element(By.ID, "token").send_keys(acme, Keys.TAB)  # the page reloads with it
    WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#recent a"))
    listed = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#recent a")]
    assert [href.split("?job=")[1] for href in listed] == [jobs["acme"]]
    assert acme not in browser.current_url and all(acme not in href for href in listed)


def test_made_up_tokens_cost_no_channels_and_each_gets_a_clean_401(tenants: Tenants) -> None:
    import psutil

    errors = ErrorLog()
    with errors, httpx.Client(base_url=tenants.page, timeout=30) as http:
        def attempt() -> httpx.Response:
            return http.get("/api/jobs", headers={"Authorization": f"Bearer {secrets.token_urlsafe(24)}"})

        [attempt() for _ in range(10)]  # the page's threads and connections, opened once
        before = psutil.Process().num_fds()
        answers = [attempt() for _ in range(300)]
        after = psutil.Process().num_fds()
    assert {(a.status_code, a.json()["code"]) for a in answers} == {(401, "AUTH_INVALID")}
    assert after - before < 20, f"{after - before} more open files after 300 made-up tokens"
    assert not errors.records, errors.records[0].getMessage()


def test_both_clients_send_a_token_per_call_over_one_channel(tenants: Tenants) -> None:
    """Client.with_token and AsyncClient.with_token: each view sees its own tenant's jobs."""
    import asyncio

    from speakerlink import AsyncClient, Client

    with Client(tenants.address, tls=tenants.ca, token="", timeout=10) as shared:
        mine = {name: {j.job_id for j in shared.with_token(token).list_jobs()} for name, token in tenants.tokens.items()}

    async def listed() -> dict[str, set[str]]:
        async with AsyncClient(tenants.address, tls=tenants.ca, token="", timeout=10) as shared:
            return {name: {j.job_id for j in await shared.with_token(token).list_jobs()}
                    for name, token in tenants.tokens.items()}

    assert asyncio.run(listed()) == mine and not mine["acme"] & mine["globex"]


def test_an_upload_belongs_to_the_token_that_sent_it_and_expires(tenants: Tenants, samples) -> None:
    acme, globex = ({"Authorization": f"Bearer {tenants.tokens[n]}", "X-Speakerlink": "1"} for n in ("acme", "globex"))
    with httpx.Client(base_url=tenants.page, timeout=30) as http:
        def upload(headers: dict) -> str:
            sent = http.post("/api/uploads", content=samples["call.mp3"].read_bytes(),
                             headers=headers | {"X-File-Name": "call.mp3"})
            assert sent.status_code == 200, sent.text
            return sent.json()["upload"]

        def submit(upload_id: str, headers: dict) -> httpx.Response:
            return http.post("/api/jobs", json={"uploads": [upload_id]}, headers=headers)

        taken = submit(upload(acme), globex)
        assert taken.status_code == 404 and taken.json()["code"] == "UPLOAD_NOT_FOUND"

        kept = upload(acme)
        spool = next(Path(tempfile.gettempdir()).glob(f"speakerlink-web-*/{kept}"))
        deadline = time.monotonic() + 10  # the page keeps uploads 2 s here
        while spool.exists():
            assert time.monotonic() < deadline, "an upload never submitted stayed in the spool"
            time.sleep(0.2)
        assert submit(kept, acme).status_code == 404

        accepted = submit(upload(acme), acme)
        assert accepted.status_code == 200 and JOB_ID.fullmatch(accepted.json()["job_id"])


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


def test_a_page_off_loopback_is_refused_unless_insecure_and_then_warns(caplog) -> None:
    import subprocess
    import sys

    refused = subprocess.run([sys.executable, "-m", "speakerlink.cli", "web", "--host", "0.0.0.0", "--port",
                              str(free_port())], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--host 0.0.0.0 is not loopback" in refused.stderr
    check_host("::1", insecure=False)  # loopback needs nothing
    with caplog.at_level(logging.WARNING, logger="speakerlink.web"):
        check_host("0.0.0.0", insecure=True)
    assert any(r.getMessage().startswith("INSECURE: serving the page on 0.0.0.0") for r in caplog.records)


def test_a_request_naming_another_host_is_refused(server) -> None:
    """A site whose name points at 127.0.0.1 (DNS rebinding) reaches the port but names itself."""
    with serving_page(server.config.address, names=("speech.lan",)) as url, httpx.Client(base_url=url) as http:
        port = url.rsplit(":", 1)[1]
        answers = {host: http.get("/api/info", headers={"Host": host}) for host in
                   (f"rebind.example:{port}", "evil.example", f"localhost:{port}", f"127.0.0.1:{port}",
                    f"[::1]:{port}", f"speech.lan:{port}")}
    assert {h: a.status_code for h, a in answers.items()} == {
        f"rebind.example:{port}": 421, "evil.example": 421, f"localhost:{port}": 200, f"127.0.0.1:{port}": 200,
        f"[::1]:{port}": 200, f"speech.lan:{port}": 200}
    assert answers["evil.example"].json()["code"] == "UNKNOWN_HOST"


def test_a_cross_site_request_cannot_cancel_a_job(page: str, client, long_clip: Path) -> None:
    events = client.iter_diarize([long_clip])
    job_id = next(events).job_id
    events.close()
    cancel = f"/api/jobs/{job_id}/cancel"
    try:
        with httpx.Client(base_url=page) as http:
            refused = [
                http.post(cancel, content="x", headers={"Content-Type": "text/plain", "Origin": "http://evil.example"}),
                http.post(cancel, content="x", headers={"Content-Type": "text/plain"}),  # a form or sendBeacon
                http.post(cancel, headers={"X-Speakerlink": "1", "Sec-Fetch-Site": "cross-site"}),
                http.post(cancel, json={}, headers={"Origin": "http://evil.example"}),
            ]
            assert [(r.status_code, r.json()["code"]) for r in refused] == [(403, "CROSS_SITE")] * 4
            state = {job.job_id: job.state for job in client.list_jobs(limit=10)}[job_id]
            assert state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)  # untouched
            origin = page  # the page itself, as a browser sends it
            done = http.post(cancel, headers={"X-Speakerlink": "1", "Origin": origin, "Sec-Fetch-Site": "same-origin"})
            assert done.status_code == 200, done.text
    finally:
        client.cancel(job_id)


def test_a_bad_file_name_gets_a_plain_400_and_any_other_name_uploads(page: str, samples) -> None:
    from urllib.parse import quote

    clip = samples["call.mp3"].read_bytes()
    with ErrorLog() as errors, httpx.Client(base_url=page) as http:
        def upload(name: str) -> httpx.Response:
            return http.post("/api/uploads", content=clip, headers={"X-File-Name": quote(name), "X-Speakerlink": "1"})

        bad = [upload(name) for name in ("..", "x" * 300 + ".wav", "a/b.wav", "\x1b[31m.wav")]
        good = upload("réunion 会議.mp3")
    assert [(r.status_code, r.json()["code"]) for r in bad] == [(400, "BAD_FILE_NAME")] * 4
    assert "at most 255" in bad[1].json()["message"]
    assert good.status_code == 200 and good.json()["name"] == "réunion 会議.mp3"
    assert not errors.records


def test_an_unreachable_service_is_said_once_in_plain_words(browser) -> None:
    with serving_page(f"127.0.0.1:{free_port()}") as url:  # nothing listens there
        browser.get(url)
        error = WebDriverWait(browser, 30).until(ready.visibility_of_element_located((By.ID, "upload-error")))
        text = browser.find_element(By.TAG_NAME, "body").text
    assert "is not answering" in error.text and text.count("not answering") == 1
    assert "failed to connect" not in text.lower() and "UNAVAILABLE" not in text


def test_following_jobs_costs_the_page_no_threads(server, client, long_clip: Path) -> None:
    """The page awaits the service on its own event loop: each job it follows is a task there,
    not a thread pumping events. The page runs in a process of its own, to count only its threads."""
    import subprocess
    import sys

    import psutil

    port = free_port()
    running = subprocess.Popen([sys.executable, "-m", "speakerlink.cli", "web", "--port", str(port)],
                               env=os.environ | {"SPEAKERLINK_SERVER": server.config.address},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = client.iter_diarize([long_clip])
    job_id = next(events).job_id
    events.close()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http, contextlib.ExitStack() as streams:
            deadline = time.monotonic() + 30
            while not _answers(http):
                assert time.monotonic() < deadline and running.poll() is None, "the page never answered"
                time.sleep(0.2)
            before = psutil.Process(running.pid).num_threads()
            for _ in range(8):
                lines = streams.enter_context(http.stream("GET", f"/api/jobs/{job_id}/events")).iter_lines()
                assert next(line for line in lines if line).startswith("data: ")
            after = psutil.Process(running.pid).num_threads()
        assert after - before <= 1, f"{after - before} more threads for 8 jobs followed"
    finally:
        client.cancel(job_id)
        running.terminate()
        running.wait(10)


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/api/info").status_code == 200
    except httpx.TransportError:
        return False


def test_the_page_and_the_service_refuse_in_one_shape(page: str, samples) -> None:
    """The page's own refusals and the service's, raised where they are found, answered alike."""
    unknown = "0" * 32
    with ErrorLog() as errors, httpx.Client(base_url=page, timeout=30, headers={"X-Speakerlink": "1"}) as http:
        sent = http.post("/api/uploads", content=samples["call.mp3"].read_bytes(), headers={"X-File-Name": "call.mp3"})
        both = {"num_speakers": 2, "min_speakers": 1}
        answers = [http.get("/api/jobs/not-a-job/events"), http.get(f"/api/jobs/{unknown}/export/pdf"),
                   http.get(f"/api/jobs/{unknown}/export/json"), http.post(f"/api/jobs/{unknown}/cancel"),
                   http.post("/api/jobs", json={"uploads": [sent.json()["upload"]], "options": both}),
                   http.post("/api/jobs", content=b"{", headers={"Content-Type": "application/json"})]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (400, "INVALID_JOB_ID"), (400, "UNKNOWN_FORMAT"), (404, "JOB_NOT_FOUND"), (404, "JOB_NOT_FOUND"),
        (400, "INVALID_OPTIONS"), (400, "NOT_JSON")]
    assert all(isinstance(a.json()["troubleshooting"], list) for a in answers)
    assert "srt" in answers[1].json()["message"] and "num_speakers" in answers[4].json()["message"]
    assert not errors.records


def test_the_live_tab_draws_the_microphone_as_people_talk_and_keeps_the_stream(page: str, samples, server,
                                                                             tmp_path: Path) -> None:
    """Chromium's fake microphone plays the sample meeting; the Live tab draws it as it is
    decided, and Stop leaves a job the page then shows."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={samples['meeting.wav']}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        browser.get(page + "/?live")
        WebDriverWait(browser, 10).until(ready.element_to_be_clickable((By.ID, "live-start"))).click()
        WebDriverWait(browser, 20).until(lambda b: "listening" in b.find_element(By.ID, "live-status").text
                                         or b.find_element(By.ID, "live-error").is_displayed())
        assert not browser.find_element(By.ID, "live-error").is_displayed(), browser.find_element(By.ID, "live-error").text
        WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#live-legend li")) >= 3)
        bars = browser.find_elements(By.CSS_SELECTOR, "#live-timeline rect")
        speakers = {b.get_attribute("data-speaker") for b in bars}
        assert speakers == {"S1", "S2", "S3"}
        browser.find_element(By.ID, "live-stop").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#legend li"))
        job_id = browser.current_url.split("?job=")[1]
        rows = browser.find_elements(By.CSS_SELECTOR, "#timeline svg[data-clip]")
        assert [r.get_attribute("data-clip") for r in rows] == ["microphone"]
    finally:
        browser.quit()
    with Client(server.config.address) as client:
        result = client.get_result(job_id)
    assert result.clips[0].name == "microphone" and 6 < result.summary.audio_seconds < 60


def test_a_live_socket_opens_only_for_the_page_itself(page: str) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    socket = page.replace("http://", "ws://") + "/api/live"
    with pytest.raises(InvalidStatus) as refused:
        connect(socket, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(socket, origin=page) as ws:  # the page's own origin: a bad config is answered, not dropped
        ws.send(json.dumps({"sample_rate": 4000}))
        ws.send("end")
        answer = json.loads(ws.recv(timeout=30))
    assert answer["kind"] == "error" and "sample_rate" in answer["message"]
