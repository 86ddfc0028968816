"""The playground page in a real headless Chromium, against a real uvicorn on loopback.

The browser is Debian's `chromium` driven by Playwright for Python (`executable_path`, never a
downloaded browser). The servers run the tiny checkpoint in float64, so the page's streamed
answer and a non-streamed API call with the same seed and settings must agree exactly. Every
check goes through what a user does: type, click, read the page.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from server import Settings
from tests.live_server import LiveServer

pytestmark = pytest.mark.timeout(180)

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Where the screenshot test saves its picture. scripts/playground_screenshot.sh points it at
# docs/playground.png and the server at the embedded model; a plain test run writes under /tmp
# and leaves the working tree alone.
SCREENSHOT = os.environ.get("PLAYGROUND_SCREENSHOT")
API_KEY = "playground-test-key"
STATE_RANK = {"masked": 0, "soft": 1, "decoded": 2, "final": 3}

# Records every state each cell shows, in order, from the DOM itself (data-state changes).
RECORD_STATES = """
window.__cellStates = {};
new MutationObserver((records) => {
  const touched = new Set();
  const push = (cell, state) => {
    const key = cell.closest('.panel').dataset.decoding + ':' + cell.dataset.pos;
    const seen = (window.__cellStates[key] = window.__cellStates[key] || []);
    if (seen[seen.length - 1] !== state) seen.push(state);
  };
  for (const r of records) {
    if (!r.target.classList || !r.target.classList.contains('cell')) continue;
    push(r.target, r.oldValue);
    touched.add(r.target);
  }
  touched.forEach((cell) => push(cell, cell.dataset.state));
}).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                      attributeFilter: ['data-state']});
"""


def _settings(checkpoint, **overrides) -> Settings:
    # Small defaults, so the page's own defaults (read from /v1/models) give a quick run.
    return Settings(model=str(checkpoint), served_model_name="tiny", dtype="float64",
                    max_tokens=32, block_length=8, steps_ratio=0.5, **overrides)


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    if os.environ.get("PLAYGROUND_MODEL") == "embedded":  # the docs screenshot: the real demo model
        live = LiveServer(Settings(served_model_name="evotoken-demo", threads=1))
    else:
        live = LiveServer(_settings(tiny_checkpoint))
    yield live
    live.close()


@pytest.fixture(scope="module")
def demo_server():
    """The embedded demo model at its own recommended decoding: real answers, real padding."""
    live = LiveServer(Settings(served_model_name="evotoken", threads=1))
    yield live
    live.close()


@pytest.fixture(scope="module")
def keyed_server(tiny_checkpoint):
    live = LiveServer(_settings(tiny_checkpoint, api_key=[API_KEY]))
    yield live
    live.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright for Python is not installed (pip install playwright)"
    if reason is None and not CHROMIUM:
        reason = "Debian's chromium is not installed (apt-get install chromium)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the playground tests (scripts/setup.sh dev)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1440, "height": 900})
        context.add_init_script(RECORD_STATES)
        yield context
        context.close()


class Page:
    """One browser tab on the playground, with the console errors it logged."""

    def __init__(self, context, base_url: str):
        self.page = context.new_page()
        self.errors: list[str] = []
        self.requests: list = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: "/v1/" in r.url and r.method == "POST" and self.requests.append(r))
        self.page.goto(base_url + "/")

    def __getattr__(self, name):
        return getattr(self.page, name)

    def set_fields(self, **values) -> None:
        for name, value in values.items():
            self.page.fill(f"#{name}", str(value))

    def figure(self, decoding: str, name: str) -> str:
        return self.page.inner_text(f'.panel[data-decoding="{decoding}"] [data-figure="{name}"]')

    def wait_for_step(self, decoding: str, at_least: int, timeout: float = 60_000) -> None:
        self.page.wait_for_function(
            """([d, n]) => { const p = document.querySelector(`.panel[data-decoding="${d}"]`);
                             const f = p && p.querySelector('[data-figure="step"]');
                             return f && parseInt(f.textContent) >= n; }""",
            arg=[decoding, at_least], timeout=timeout)

    def wait_for_run(self, decoding: str, outcome: str, timeout: float = 60_000) -> None:
        self.page.wait_for_selector(f'.panel[data-decoding="{decoding}"][data-run="{outcome}"]',
                                    state="attached", timeout=timeout)


@pytest.fixture
def page(browser, server):
    tab = Page(browser, server.url)
    tab.wait_for_selector("body[data-defaults=loaded]")
    yield tab
    tab.close()


def _nonstream_body(streamed: dict) -> dict:
    return {k: v for k, v in streamed.items() if k not in ("stream", "stream_steps", "stream_options")}


def _wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- the tests ----------------------------------------------------------------------------------

def test_page_loads_with_server_defaults_labelled_controls_and_no_console_errors(page, server):
    defaults = httpx.get(f"{server.url}/v1/models").json()["data"][0]["evotoken_defaults"]
    assert defaults["max_tokens"] == 32 and defaults["block_length"] == 8 and defaults["steps"] == 16
    for name in ("max_tokens", "block_length", "steps", "k_soft"):
        assert page.input_value(f"#{name}") == str(defaults[name]), name
    assert float(page.input_value("#alpha_soft_mask")) == defaults["alpha_soft_mask"]
    assert page.input_value("#decoding") == defaults["decoding"]
    assert page.input_value("#cache") == defaults["cache"] == "none"
    assert page.input_value("#threshold") == ""  # no threshold: a fixed count per step
    assert page.inner_text("#model-name") == "tiny"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.name)""")
    assert unlabelled == []
    assert page.errors == []


def test_cells_evolve_and_the_answer_equals_the_non_streamed_api_answer(page, server):
    page.set_fields(prompt="What is 12 + 30?", temperature=0.7, seed=11)
    page.click("#run")
    page.wait_for_run("evotoken", "done")

    states = page.evaluate("window.__cellStates")
    cells = {int(k.split(":")[1]): v for k, v in states.items() if k.startswith("evotoken:")}
    assert sorted(cells) == list(range(32)), "every position changed state at least once"
    for pos, seen in cells.items():
        ranks = [STATE_RANK[s] for s in seen]
        assert ranks == sorted(ranks), f"position {pos} went backwards: {seen}"
        assert seen[0] == "masked" and len(seen) > 1, f"position {pos}: {seen}"
    for pos in range(8):  # the first block is always confirmed, whatever the answer's length
        assert cells[pos][0] == "masked" and cells[pos][-1] == "final", cells[pos]
        assert {"soft", "decoded"} & set(cells[pos]), cells[pos]
    assert any("soft" in seen for seen in cells.values())
    assert any("decoded" in seen for seen in cells.values())
    assert page.locator('.panel[data-decoding="evotoken"] .cell[data-state="final"]').count() >= 8

    (request,) = page.requests
    streamed = request.post_data_json
    assert streamed["stream_steps"] == "full" and streamed["seed"] == 11 and streamed["temperature"] == 0.7
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=_nonstream_body(streamed), timeout=60).json()
    expected = answer["choices"][0]["message"]["content"]
    assert page.text_content(".panel .answer") == expected
    assert answer["choices"][0]["finish_reason"] in page.inner_text(".panel .finish")

    # The replay shows any recorded step: the first one has soft cells and no final one.
    page.focus("#scrubber")
    page.keyboard.press("Home")
    assert page.figure("evotoken", "step").startswith("1 /")
    assert page.locator('.cell[data-state="soft"]').count() > 0
    assert page.locator('.cell[data-state="final"]').count() == 0

    # Keyboard: the canvas takes focus and the arrow keys move the inspected position.
    page.focus('.panel[data-decoding="evotoken"] .canvas')
    page.keyboard.press("ArrowRight")
    assert page.inner_text(".inspector").startswith("Position 1: ")
    assert page.errors == []


def test_stop_aborts_the_stream_and_the_server_cancels_the_request(page, server):
    page.check("input[name=mode][value=completion]")
    page.set_fields(prompt="The quick brown fox", max_tokens=256, block_length=32, steps=256)
    page.click("#run")
    page.wait_for_step("evotoken", 2)
    assert page.requests[-1].url.endswith("/v1/completions")
    assert page.requests[-1].post_data_json["prompt"] == "The quick brown fox"
    cancelled = server.metric('evotoken_rows_total{outcome="cancelled"}')
    assert server.metric("evotoken_active_rows") == 1, "the run is still decoding on the server"
    page.click("#stop")
    page.wait_for_run("evotoken", "stopped", timeout=10_000)
    assert _wait_until(lambda: server.metric("evotoken_active_rows") == 0), "the engine dropped the row"
    assert server.metric("evotoken_queue_depth") == 0
    assert server.metric('evotoken_rows_total{outcome="cancelled"}') == cancelled + 1
    assert int(page.figure("evotoken", "step").split("/")[0]) < 256
    assert "Stopped" in page.inner_text(".panel-message")
    assert page.is_enabled("#run") and not page.is_enabled("#stop")
    assert page.errors == []


def test_screenshot_of_a_side_by_side_run_in_progress(page, server, tmp_path):
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "playground.png"
    page.set_fields(prompt="Sort the list: 5, 3, 9, 1.", max_tokens=64, block_length=16, steps=48, seed=3)
    page.check("#compare")
    # Slow the page's network so that the screenshot catches the run half way, on any machine.
    cdp = page.context.new_cdp_session(page.page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                   "downloadThroughput": 120_000, "uploadThroughput": -1})
    page.click("#run")
    # the demo model ends its answer early (its later blocks are all end-of-text), so the docs
    # picture is taken sooner in the run than the tiny model's
    halfway = 5 if os.environ.get("PLAYGROUND_MODEL") == "embedded" else 18
    page.wait_for_step("evotoken", halfway)
    page.wait_for_step("hard_mask", halfway)
    soft = '.panel[data-decoding="evotoken"] .cell[data-state="soft"]'
    in_block = '.panel[data-decoding="evotoken"] .cell.current[data-state="soft"]'
    # Point at a soft cell (a mouseover, so the page does not scroll) to show its candidates.
    page.locator(in_block if page.locator(in_block).count() else soft).first.dispatch_event("mouseover")
    page.evaluate("window.scrollTo(0, 0)")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert page.locator(".panel").count() == 2
    assert page.locator('.panel[data-decoding="hard_mask"] .cell[data-state="masked"]').count() > 0
    assert page.locator('.panel[data-decoding="evotoken"] .cell[data-state="soft"]').count() > 0
    assert "candidates" in page.inner_text('.panel[data-decoding="evotoken"] .inspector')
    page.click("#stop")
    page.wait_for_run("evotoken", "stopped", timeout=10_000)
    assert shot.stat().st_size > 10_000
    assert page.errors == []


def test_settings_the_server_rejects_show_its_400_message(page):
    page.set_fields(steps=7)  # 4 blocks of 8 cannot share 7 steps
    page.click("#run")
    page.wait_for_run("evotoken", "error")
    message = page.inner_text(".panel-message")
    assert message.startswith("The request failed: 400: ") and "(parameter: steps)" in message
    assert page.is_enabled("#run") and page.is_visible(".panel .canvas")


def test_a_missing_or_wrong_api_key_shows_the_api_error(browser, keyed_server):
    page = Page(browser, keyed_server.url)
    page.wait_for_selector("body[data-defaults=failed]")
    assert "API key" in page.inner_text("#page-message")

    page.fill("#api-key", "wrong-key")
    page.press("#api-key", "Tab")
    page.wait_for_function("() => document.querySelector('#page-message').textContent.includes('Incorrect')")
    page.click("#run")
    page.wait_for_run("evotoken", "error")
    message = page.inner_text(".panel-message")
    assert "401" in message and "Incorrect API key" in message
    assert page.requests[-1].headers["authorization"] == "Bearer wrong-key"
    assert page.evaluate("localStorage.length") == 0, "the key is stored only when asked"

    page.fill("#api-key", API_KEY)
    page.check("#remember-key")
    page.press("#api-key", "Tab")
    page.wait_for_selector("body[data-defaults=loaded]")
    assert page.is_hidden("#page-message")
    assert page.evaluate("Object.values({...localStorage})") == [API_KEY]
    page.close()


def test_the_example_menu_fills_the_prompt_and_the_first_example_is_prefilled(page):
    examples = page.evaluate("() => [...document.querySelectorAll('.example')].map((b) => [b.textContent, b.dataset.prompt])")
    assert [label for label, _ in examples] == ["Sum", "Word problem", "Sort", "Reverse", "Countdown"]
    assert page.input_value("#prompt") == examples[0][1]
    assert page.get_attribute(".example >> nth=0", "aria-pressed") == "true"
    page.check("input[name=mode][value=completion]")
    for i, (label, prompt) in enumerate(examples):
        page.click(f".example >> nth={i}")
        assert page.input_value("#prompt") == prompt
        assert page.is_checked("input[name=mode][value=chat]"), "examples are chat messages"
        pressed = page.evaluate("() => [...document.querySelectorAll('.example')].map((b) => b.getAttribute('aria-pressed'))")
        assert pressed == ["true" if j == i else "false" for j in range(len(examples))], label
    page.fill("#prompt", "something else")
    assert page.locator('.example[aria-pressed="true"]').count() == 0
    assert page.errors == []


def test_the_padding_after_the_answer_is_drawn_as_one_marked_cell(browser, demo_server):
    page = Page(browser, demo_server.url)
    page.wait_for_selector("body[data-defaults=loaded]")
    assert page.input_value("#max_tokens") == "48"  # the demo model's recommended canvas
    page.click("#run")  # the prefilled example
    page.wait_for_run("evotoken", "done")
    assert "\\boxed{59}" in page.text_content(".panel .answer")

    panel = '.panel[data-decoding="evotoken"]'
    tail = page.locator(f"{panel} .cell.tail")
    assert tail.count() == 1
    count = int(tail.locator(".tok").get_attribute("data-count"))
    start = int(tail.get_attribute("data-pos"))
    assert count >= 10 and start + count == 48
    assert tail.locator(".tok").inner_text() == "<|endoftext|>" and "\u00d7" in tail.evaluate(
        "(c) => getComputedStyle(c.firstChild, '::after').content")
    hidden = page.locator(f"{panel} .cell.tail-hidden")
    assert hidden.count() == count - 1
    assert page.evaluate(f"() => [...document.querySelectorAll('{panel} .cell.tail-hidden')]"
                         ".every((c) => c.offsetParent === null && c.dataset.state === 'final')")
    assert page.locator(f"{panel} .cell:visible").count() == 48 - count + 1
    # every position still came in the stream and changed state in the page
    states = page.evaluate("window.__cellStates")
    assert sorted(int(k.split(":")[1]) for k in states if k.startswith("evotoken:")) == list(range(48))

    tail.dispatch_event("mouseover")
    assert page.inner_text(f"{panel} .inspector").startswith(f"Positions {start}\u201347 ({count} cells shown as one): final")
    page.focus(f"{panel} .canvas")
    page.keyboard.press("End")
    assert page.inner_text(f"{panel} .inspector").startswith(f"Positions {start}\u2013")

    page.focus("#scrubber")
    page.keyboard.press("Home")  # the first step: nothing has ended yet
    assert page.locator(f"{panel} .cell.tail").count() == 0
    assert page.locator(f"{panel} .cell.tail-hidden").count() == 0
    page.keyboard.press("End")
    assert page.locator(f"{panel} .cell.tail").count() == 1
    assert page.errors == []
    page.close()
