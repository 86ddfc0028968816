"""The shipped nginx config: the directives the deployment promises, and `nginx -t` from Debian's
nginx on a test config generated from deploy/nginx/evotoken.conf by swapping the compose
service names for loopback ports, so what is tested is what ships. The end-to-end test
through it is test_deploy_nginx_e2e.py.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "deploy" / "nginx" / "evotoken.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

needs_nginx = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"),
    reason="nginx is not installed (apt-get install nginx); CI installs it and runs this")

# The shipped upstream names the 4 replicas of deploy/compose.multi-gpu.yml.
UPSTREAM_LINE = re.compile(r"^(\s*)server\s+evotoken-gpu(\d+):8000\s+resolve\s+([^;]*);$", re.M)


def render_config(directory: Path, listen_port: int, replica_ports: list[int]) -> Path:
    """nginx.conf that includes the shipped site with loopback upstreams, logs in `directory`.

    `resolve` is dropped with the names: an IP literal needs no DNS, and Debian's nginx (1.22)
    predates `resolve` in open-source nginx (1.27.3). Everything else is the shipped text.
    """
    site = SHIPPED.read_text()
    servers = UPSTREAM_LINE.findall(site)
    assert [int(index) for _, index, _ in servers] == [0, 1, 2, 3], "upstream block changed shape"
    params = {int(index): rest for _, index, rest in servers}

    def to_loopback(match: re.Match) -> str:
        index = int(match[2])
        if index >= len(replica_ports):
            return ""
        return f"{match[1]}server 127.0.0.1:{replica_ports[index]} {params[index]};"

    site = UPSTREAM_LINE.sub(to_loopback, site)
    site, listens = re.subn(r"^\s*listen 8080;$", f"    listen 127.0.0.1:{listen_port};", site, flags=re.M)
    site, logs = re.subn(r"access_log /var/log/nginx/access.log", f"access_log {directory}/access.log", site)
    assert (listens, logs) == (1, 1), "listen/access_log lines changed shape"
    (directory / "evotoken.conf").write_text(site)
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / temp).mkdir(exist_ok=True)
    main = directory / "nginx.conf"
    main.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {directory}/evotoken.conf;
}}
""")
    return main


def nginx_test(config: Path) -> subprocess.CompletedProcess:
    if NGINX is None:
        pytest.fail("nginx is not installed (apt-get install nginx)")
    return subprocess.run([NGINX, "-t", "-p", str(config.parent), "-c", str(config),
                           "-e", str(config.parent / "error.log")], capture_output=True, text=True, timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def block(text: str, header: str) -> str:
    """The body of the first `header { ... }` block, comments stripped."""
    text = re.sub(r"#[^\n]*", "", text)
    start = text.index(header + " {") + len(header) + 2
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return text[start:end - 1]


def directives(body: str) -> dict[str, list[str]]:
    """Top-level `name args;` statements of a block body (nested blocks skipped)."""
    flat, depth = "", 0
    for char in body:
        depth += {"{": 1, "}": -1}.get(char, 0)
        flat += char if depth == 0 and char != "}" else ""
    found: dict[str, list[str]] = {}
    for statement in flat.split(";"):
        words = statement.split()
        if words:
            found.setdefault(words[0], []).append(" ".join(words[1:]))
    return found


def test_shipped_config_carries_the_sse_and_failover_settings():
    text = SHIPPED.read_text()
    upstream = directives(block(text, "upstream evotoken"))
    assert "least_conn" in upstream and upstream["keepalive"] == ["32"]
    for server in upstream["server"]:
        assert re.search(r"max_fails=\d+ fail_timeout=\d+s", server), server
    server = directives(block(text, "server"))
    assert server["proxy_http_version"] == ["1.1"] and server["proxy_set_header"][0] == 'Connection ""'
    assert "X-Request-ID $evotoken_request_id" in server["proxy_set_header"]
    assert re.search(r'map \$http_x_request_id \$evotoken_request_id \{[^}]*"" +\$request_id;', text)
    retry = server["proxy_next_upstream"][0].split()
    assert {"error", "http_502", "http_503"} <= set(retry) and "http_429" not in retry
    api = directives(block(text, "location /v1/"))
    assert api["proxy_buffering"] == ["off"] and api["proxy_cache"] == ["off"] and api["gzip"] == ["off"]
    assert int(api["proxy_read_timeout"][0].rstrip("s")) >= 600
    assert api["add_header"] == ["X-Accel-Buffering no always"]
    assert api["proxy_pass"] == ["http://evotoken"]


@needs_nginx
def test_nginx_accepts_the_shipped_config(tmp_path):
    result = nginx_test(render_config(tmp_path, free_port(), [free_port(), free_port()]))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@needs_nginx
def test_nginx_test_is_live(tmp_path):
    """`nginx -t` must reject a broken directive, or the test above proves nothing."""
    config = render_config(tmp_path, free_port(), [free_port()])
    site = tmp_path / "evotoken.conf"
    site.write_text(site.read_text().replace("proxy_buffering off;", "proxy_buffering of;"))
    assert nginx_test(config).returncode != 0
