"""docs/deployment.md and deploy/README.md stay true to the files and the settings they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "deployment.md"
GUIDE = REPO / "deploy" / "README.md"
COMPOSE_ONLY = {"EVOTOKEN_IMAGE", "EVOTOKEN_PUBLISH", "EVOTOKEN_MODELS_DIR"}


def documented_variables() -> set[str]:
    return set(re.findall(r"^\| `(EVOTOKEN_\w+)` \|", DOCS.read_text(), re.M))


def test_every_server_setting_is_documented_and_nothing_else_is():
    settings = pytest.importorskip("server.settings")
    fields = {f"EVOTOKEN_{name.upper()}" for name in settings.Settings.model_fields}
    assert documented_variables() == fields


def test_every_variable_the_compose_files_read_is_documented():
    text = DOCS.read_text()
    for path in (REPO / "docker-compose.yml", REPO / "deploy" / "compose.multi-gpu.yml"):
        source = path.read_text()
        interpolated = set(re.findall(r"\$\{(\w+)", source))
        spec = yaml.safe_load(source)
        passed = {name for service in spec["services"].values()
                  for name in (service.get("environment") or {})}
        for name in (interpolated | passed) - {"CUDA_VISIBLE_DEVICES"}:
            assert f"`{name}`" in text, f"{path.name} reads {name}; docs/deployment.md does not say so"
    assert COMPOSE_ONLY <= set(re.findall(r"`(EVOTOKEN_\w+)`", text))


def shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)


def test_commands_name_files_and_services_that_exist():
    commands = "\n".join(shell_blocks(DOCS) + shell_blocks(GUIDE))
    assert "docker compose up -d --build" in commands
    assert "kubectl apply -k deploy/kubernetes" in commands
    for path in set(re.findall(r"\b(deploy/[\w./-]+[\w])", commands)):
        assert (REPO / path).exists(), f"a documented command names {path}, which does not exist"
    services = set(yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"])
    for named in re.findall(r"--profile cpu up -d --build ([\w -]+)", commands):
        assert set(named.split()) <= services
    multi = set(yaml.safe_load((REPO / "deploy" / "compose.multi-gpu.yml").read_text())["services"])
    loop = re.search(r"for i in ([\d ]+); do", commands)
    assert {f"evotoken-gpu{i}" for i in loop[1].split()} == {s for s in multi if s.startswith("evotoken-gpu")}



def test_plain_runs_outlast_the_drain_and_podman_builds_keep_the_healthcheck():
    from server.settings import Settings

    grace = Settings.model_fields["shutdown_grace"].default
    commands = "\n".join(shell_blocks(DOCS) + shell_blocks(GUIDE)).replace("\\\n", " ")
    runs = re.findall(r"^(?:docker|podman) run .*$", commands, re.M)
    assert runs
    for run in runs:
        timeout = re.search(r"--stop-timeout[ =](\d+)", run)
        assert timeout and int(timeout[1]) > grace, run
    builds = re.findall(r"^(?:podman|buildah) build.*$", commands, re.M)
    assert builds and all("--format docker" in b for b in builds), builds


def test_the_compose_version_floor_is_stated_where_start_interval_is_used():
    """`start_interval` needs Compose >= 2.20.2 to parse and Engine >= 25.0 to honour it."""
    uses = [p for p in (REPO / "docker-compose.yml", REPO / "deploy" / "compose.multi-gpu.yml")
            if "start_interval" in p.read_text()]
    assert uses
    for doc in (DOCS, GUIDE):
        text = " ".join(doc.read_text().split())
        assert re.search(r"Docker Engine 25(\.0)?\+? ", text) or "Engine 25.0 or newer" in text, doc.name
        assert "2.20.2" in text, doc.name
