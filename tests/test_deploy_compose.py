"""docker-compose.yml, deploy/compose.multi-gpu.yml and the Prometheus files they mount.

Validators: the compose-spec JSON schema as vendored by check-jsonschema (PyPI), and
promtool (Debian's `prometheus` package) for the Prometheus configs and alert rules. On top
of the schemas, the structure tests pin what the deployment promises an operator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
MULTI_GPU = REPO / "deploy" / "compose.multi-gpu.yml"
PROMETHEUS = REPO / "deploy" / "prometheus"
NGINX_CONF = REPO / "deploy" / "nginx" / "evotoken.conf"


def require_tool(name: str, install_hint: str) -> str:
    """A validator that is missing is a skip on a laptop and a failure in CI."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def interpolate(value, env: dict[str, str] | None = None):
    """Compose's `${VAR:-default}` / `${VAR}` with an operator environment (empty: defaults)."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1]) or (m[2] or ""), value)


def load(path: Path, env: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(path.read_text()), env)


def validate_compose(*paths: Path) -> subprocess.CompletedProcess:
    checker = require_tool("check-jsonschema", "pip install check-jsonschema")
    return subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_compose_files_match_the_compose_spec_schema():
    result = validate_compose(COMPOSE, MULTI_GPU)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_is_live(tmp_path):
    """A misspelt key must fail, or the test above proves nothing."""
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["evotoken"]["healthcheck"]["start_periode"] = "1m"
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = validate_compose(path)
    assert result.returncode != 0 and "start_periode" in result.stdout


def gpu_devices(service: dict) -> list[dict]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_gpu_service_defaults_to_llada_8b_instruct_with_the_evotoken_lora():
    service = load(COMPOSE)["services"]["evotoken"]
    env = service["environment"]
    assert env["EVOTOKEN_MODEL"] == "GSAI-ML/LLaDA-8B-Instruct"
    assert env["EVOTOKEN_LORA"] == "zhongzero/EvoToken_LLaDA_Instruct_8B_Lora"
    assert env["EVOTOKEN_DTYPE"] == "bfloat16" and env["EVOTOKEN_DEVICE"] == "cuda"
    # Unset-by-default pass-throughs must stay unset, not become empty strings.
    assert env["EVOTOKEN_API_KEY"] is None and env["HF_TOKEN"] is None
    overridden = load(COMPOSE, {"EVOTOKEN_MODEL": "/models/mine", "EVOTOKEN_MAX_BATCH_SIZE": "48"})
    assert overridden["services"]["evotoken"]["environment"]["EVOTOKEN_MODEL"] == "/models/mine"
    assert overridden["services"]["evotoken"]["environment"]["EVOTOKEN_MAX_BATCH_SIZE"] == "48"
    assert gpu_devices(service) == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_gpu_service_keeps_the_hf_cache_and_runs_like_a_service():
    spec = load(COMPOSE)
    service = spec["services"]["evotoken"]
    assert "hf-cache:/var/cache/huggingface" in service["volumes"] and "hf-cache" in spec["volumes"]
    assert any(v.endswith(":/models:ro") for v in service["volumes"])
    assert service["restart"] == "unless-stopped"
    assert service["healthcheck"]["test"] == ["CMD", "evotoken-healthcheck", "/ready"]
    logging = service["logging"]
    assert logging["driver"] == "json-file"
    assert {"max-size", "max-file"} <= set(logging["options"])
    assert service["ports"] == ["8000:8000"]


def test_cpu_profile_runs_the_embedded_model_without_a_gpu():
    spec = load(COMPOSE)
    cpu = spec["services"]["evotoken-cpu"]
    assert cpu["profiles"] == ["cpu"]
    assert gpu_devices(cpu) == []
    assert cpu["environment"]["EVOTOKEN_DEVICE"] == "cpu"
    assert "EVOTOKEN_MODEL" not in cpu["environment"] and "EVOTOKEN_LORA" not in cpu["environment"]
    # Prometheus scrapes `evotoken:8000` whichever of the two runs.
    assert "evotoken" in cpu["networks"]["default"]["aliases"]
    # Only the GPU service and Prometheus start on a plain `docker compose up`.
    unprofiled = {name for name, s in spec["services"].items() if not s.get("profiles")}
    assert unprofiled == {"evotoken", "prometheus"}


def test_prometheus_mounts_existing_configs_that_scrape_the_server():
    for path, services_file in ((PROMETHEUS / "prometheus.yml", COMPOSE),
                                (PROMETHEUS / "prometheus-multi-gpu.yml", MULTI_GPU)):
        prometheus = load(services_file)["services"]["prometheus"]
        for volume in prometheus["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (services_file.parent / source).resolve().is_file(), volume
        config = yaml.safe_load(path.read_text())
        (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "evotoken"]
        assert job["metrics_path"] == "/metrics"
        assert config["rule_files"] == ["alerts.yml"]


def test_multi_gpu_runs_one_replica_per_gpu_behind_nginx():
    spec = load(MULTI_GPU)
    replicas = {name: s for name, s in spec["services"].items() if name.startswith("evotoken-gpu")}
    assert len(replicas) >= 2
    device_ids = []
    for name, service in replicas.items():
        (device,) = gpu_devices(service)
        assert device["driver"] == "nvidia" and "count" not in device
        assert device["device_ids"] == [name.removeprefix("evotoken-gpu")]
        device_ids += device["device_ids"]
        assert service["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
        assert service["environment"]["EVOTOKEN_MODEL"] == "GSAI-ML/LLaDA-8B-Instruct"
        assert "ports" not in service, "replicas are reached through nginx only"
        assert "hf-cache:/var/cache/huggingface" in service["volumes"]
    assert len(set(device_ids)) == len(device_ids), "two replicas share a GPU"

    nginx = spec["services"]["nginx"]
    assert set(nginx["depends_on"]) == set(replicas)
    assert "./nginx/evotoken.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    major, minor = map(int, re.search(r"nginx:(\d+)\.(\d+)", nginx["image"]).groups())
    assert (major, minor) >= (1, 27), "`resolve` in upstream blocks needs nginx >= 1.27.3"

    upstream = re.findall(r"^\s*server\s+([\w.-]+):8000\b", NGINX_CONF.read_text(), re.M)
    assert sorted(upstream) == sorted(replicas), "nginx upstream and compose replicas differ"
    targets = yaml.safe_load((PROMETHEUS / "prometheus-multi-gpu.yml").read_text())
    (job,) = targets["scrape_configs"]
    scraped = [t.removesuffix(":8000") for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(scraped) == sorted(replicas), "Prometheus must scrape each replica directly"


def dockerfile_base_image() -> str:
    return re.search(r"^ARG BASE_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)[1]


@pytest.mark.parametrize("path", [COMPOSE, MULTI_GPU], ids=lambda p: p.name)
def test_every_build_takes_its_base_image_from_the_environment(path):
    """`BASE_IMAGE=... docker compose build`: today's default unless the operator sets one."""
    built = {name: s for name, s in load(path)["services"].items() if "build" in s}
    assert built
    for name, service in built.items():
        assert service["build"]["args"]["BASE_IMAGE"] == dockerfile_base_image(), name
        chosen = load(path, {"BASE_IMAGE": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"})["services"][name]
        assert chosen["build"]["args"]["BASE_IMAGE"] == "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"


def test_compose_stop_grace_outlasts_the_servers_drain():
    from server.settings import Settings

    grace = Settings.model_fields["shutdown_grace"].default
    for path in (COMPOSE, MULTI_GPU):
        for name, service in load(path)["services"].items():
            if name.startswith("evotoken"):
                assert int(service["stop_grace_period"].removesuffix("s")) > grace, (path.name, name)


def promtool() -> str:
    return require_tool("promtool", "apt-get install prometheus")


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-multi-gpu.yml"])
def test_promtool_accepts_the_prometheus_configs_and_rules(name):
    result = subprocess.run([promtool(), "check", "config", name], cwd=PROMETHEUS,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_accepts_the_kubernetes_scrape_config_relabelling(tmp_path):
    """Debian builds Prometheus without Kubernetes discovery, so its promtool rejects
    `kubernetes_sd_configs`. Swap that one block for a static target and have promtool
    check everything else (the relabel regexes and actions are what breaks in practice)."""
    config = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["pod:8000"]}]
    actions = [r.get("action", "replace") for r in job["relabel_configs"]]
    assert actions[:3] == ["keep", "keep", "keep"]
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_on_sustained_shedding(tmp_path):
    """promtool's rule unit test: 5% of requests get 429 for 20 minutes -> the page fires;
    the same traffic with no 429 stays quiet."""
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'evotoken_requests_total{job="evotoken",instance="gpu0",route="/v1/chat/completions",status="200"}',
                 "values": "0+95x30"},
                {"series": 'evotoken_requests_total{job="evotoken",instance="gpu0",route="/v1/chat/completions",status="429"}',
                 "values": "0+5x30"},
                {"series": 'evotoken_requests_total{job="evotoken",instance="gpu1",route="/v1/chat/completions",status="200"}',
                 "values": "0+100x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "25m", "alertname": "EvotokenShedding",
                 "exp_alerts": [{"exp_labels": {"severity": "page", "instance": "gpu0"},
                                 "exp_annotations": {"summary": "gpu0 rejects 5% of requests with 429"}}]},
                {"eval_time": "25m", "alertname": "EvotokenServerErrors", "exp_alerts": []},
            ],
        }],
    }))
    result = subprocess.run([promtool(), "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
