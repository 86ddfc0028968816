"""Security promises, as tests: keys compared in constant time and never logged, requests
cannot pick what is loaded, trust_remote_code stays off, CORS is closed unless configured.

(The body size limit is pinned in test_server_errors.py and, at 10 MB with and without a
content-length, in test_bad_input.py.)
"""

from __future__ import annotations

import inspect
import logging

import httpx
import pytest

import server.auth
from evotoken_core.model import LLaDAModelLM, load_model
from server import Settings
from tests.server_harness import Harness, error_of
from tests.live_server import LiveServer

pytestmark = pytest.mark.timeout(120)

KEY = "sk-reliability-4f9c2e7a1b"
FILE_KEY = "sk-from-the-file-8d3a"
WRONG = "sk-wrong-guess-77e1c0"


# --- keys -------------------------------------------------------------------------------------------

def test_a_key_is_compared_with_compare_digest_against_every_configured_key(monkeypatch):
    compared = []
    real = server.auth.hmac.compare_digest

    def counting(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(server.auth.hmac, "compare_digest", counting)
    keys = [b"sk-a", b"sk-b", b"sk-c"]
    assert server.auth.key_matches("sk-a", keys) and compared == keys  # no early stop on a match
    compared.clear()
    assert not server.auth.key_matches("sk-z", keys) and compared == keys
    assert "==" not in inspect.getsource(server.auth.key_matches)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        if record.name.startswith(("httpx", "httpcore")):  # this test's own client, not the server
            return
        self.lines.append(self.format(record) + repr(record.args))


def test_keys_never_reach_a_log_line_or_a_response(tiny_checkpoint, tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(FILE_KEY + "\n")
    capture = _Capture()
    # uvicorn's loggers do not propagate to the root logger: listen on them directly. Not on
    # uvicorn.access, which `evotoken serve` turns off (uvicorn logs there whenever it has a
    # handler, query string included); the server writes its own access line, path only.
    names = ["", "uvicorn", "uvicorn.error", "evotoken", "evotoken.server", "evotoken.server.access",
             "evotoken.server.worker"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    live = LiveServer(Settings(model=str(tiny_checkpoint), served_model_name="tiny",
                               api_key=[KEY], api_key_file=key_file, max_tokens=4, block_length=4,
                               log_level="debug"))
    try:
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
            lg.addHandler(capture)
        bodies = []
        for key in (KEY, FILE_KEY, WRONG):
            for path in ("/v1/completions", f"/v1/completions?api_key={key}"):
                r = httpx.post(live.url + path, json={"prompt": "Hi", "max_tokens": 4}, timeout=30,
                               headers={"authorization": f"Bearer {key}"})
                bodies.append(r.text)
                assert r.status_code == (401 if key == WRONG else 200), r.text
        stream = httpx.post(live.url + "/v1/completions", timeout=30, headers={"authorization": f"Bearer {KEY}"},
                            json={"prompt": "Hi", "max_tokens": 4, "stream": True})
        bodies.append(stream.text)
        bad = httpx.post(live.url + "/v1/completions", json={"prompt": "Hi", "top_p": 0.5}, timeout=30,
                         headers={"authorization": f"Bearer {KEY}"})
        assert bad.status_code == 400
        bodies += [bad.text, httpx.get(live.url + "/metrics").text]
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(capture)
            lg.setLevel(level)
        live.close()
    logged = "\n".join(capture.lines)
    assert "/v1/completions" in logged  # the access log did record these requests
    for secret in (KEY, FILE_KEY, WRONG):
        assert secret not in logged, f"{secret} was logged"
        assert all(secret not in body for body in bodies), f"{secret} was echoed"


# --- what a request can load --------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tiny_checkpoint):
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", max_tokens=4, block_length=4,
                         trust_remote_code=True))
    yield h
    h.close()


def test_a_request_cannot_name_a_path_or_another_model_and_nothing_is_loaded(app, tiny_checkpoint, monkeypatch):
    import transformers

    loads = []

    def record(*args, **kwargs):
        loads.append((args, kwargs))
        raise AssertionError("a request made the server load something")

    monkeypatch.setattr(LLaDAModelLM, "from_pretrained", classmethod(record))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", classmethod(record))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", classmethod(record))
    monkeypatch.setattr("evotoken_core.model.loading.load_model", record)
    names = [str(tiny_checkpoint), "/etc/passwd", "../../tmp/x", "file:///tmp/x", "gpt2",
             "meta-llama/Llama-3-8B", "tiny/../x", "tiny ", "TINY"]
    for name in names:
        for path, body in (("/v1/completions", {"prompt": "Hi"}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]})):
            err = error_of(app.post(path, {**body, "model": name, "max_tokens": 4}), 404)
            assert err["code"] == "model_not_found" and err["param"] == "model"
    for field in ({"lora": "some/adapter"}, {"trust_remote_code": True}, {"model_path": "/tmp"}):
        assert error_of(app.post("/v1/completions", {"prompt": "Hi", **field}), 400)["param"] == next(iter(field))
    assert app.post("/v1/completions", {"model": "tiny", "prompt": "Hi", "max_tokens": 4}).status_code == 200
    assert loads == []


def test_trust_remote_code_is_off_by_default_and_never_reaches_the_loader(tiny_checkpoint, monkeypatch):
    """Even with the flag on, loading goes through this package's own model class."""
    import transformers

    assert Settings().trust_remote_code is False
    assert "trust_remote_code" not in inspect.signature(load_model).parameters
    seen = []
    for cls in (LLaDAModelLM, transformers.AutoTokenizer):
        real = cls.from_pretrained.__func__

        def spy(klass, *args, _real=real, **kwargs):
            seen.append(kwargs)
            return _real(klass, *args, **kwargs)
        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", trust_remote_code=True))
    h.close()
    assert len(seen) >= 2 and not any(kwargs.get("trust_remote_code") for kwargs in seen)


# --- CORS ----------------------------------------------------------------------------------------------

PREFLIGHT = {"origin": "https://evil.example", "access-control-request-method": "POST",
             "access-control-request-headers": "authorization, content-type"}


def test_cors_is_closed_when_no_origin_is_configured(app):
    pre = app.request("OPTIONS", "/v1/completions", headers=PREFLIGHT)
    assert pre.status_code >= 400
    assert not any(h.startswith("access-control-") for h in pre.headers)
    get = app.get("/v1/models", headers={"origin": "https://evil.example"})
    assert get.status_code == 200 and not any(h.startswith("access-control-") for h in get.headers)


def test_cors_allows_only_the_configured_origin(tiny_checkpoint):
    h = Harness(Settings(model=str(tiny_checkpoint), served_model_name="tiny", cors_origin=["https://play.example"]))
    try:
        evil = h.request("OPTIONS", "/v1/completions", headers=PREFLIGHT)
        assert evil.status_code >= 400 and evil.headers.get("access-control-allow-origin") != "https://evil.example"
        listed = h.request("OPTIONS", "/v1/completions", headers={**PREFLIGHT, "origin": "https://play.example"})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "https://play.example"
        simple = h.get("/v1/models", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
    finally:
        h.close()
