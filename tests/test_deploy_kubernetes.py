"""deploy/kubernetes: schema-valid on the Kubernetes versions operators run, and wired up.

Validator: kubernetes-validate (PyPI), which ships the upstream OpenAPI-derived JSON schemas
per Kubernetes version and runs offline. Strict mode rejects unknown fields, the typo class
that kubectl would otherwise only report at apply time (or silently drop).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "kubernetes"
# The oldest minor still common on managed clusters, and the newest the validator knows.
OLDEST = "1.29.0"


@pytest.fixture(scope="module")
def validator():
    try:
        import kubernetes_validate.utils as utils
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("kubernetes-validate is not installed (pip install kubernetes-validate)")
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    return utils


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def resources() -> list[dict]:
    docs = []
    for name in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def by_kind(kind: str) -> dict:
    (doc,) = [d for d in resources() if d["kind"] == kind]
    return doc


def test_kustomization_lists_every_manifest_and_nothing_missing():
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", [OLDEST, "latest"])
def test_manifests_pass_strict_schema_validation(validator, version):
    version = validator.latest_version() if version == "latest" else version
    for doc in resources():
        validator.validate(doc, version, strict=True)  # raises ValidationError


def test_schema_validation_is_live(validator):
    deployment = by_kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(validator.ValidationError, match="readinesProbe"):
        validator.validate(deployment, validator.latest_version(), strict=True)


def container() -> dict:
    (c,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_each_pod_gets_one_gpu_and_the_8b_model_in_bf16():
    c = container()
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1  # extended resources: limits == requests
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["EVOTOKEN_MODEL"] == "GSAI-ML/LLaDA-8B-Instruct"
    assert env["EVOTOKEN_LORA"] == "zhongzero/EvoToken_LLaDA_Instruct_8B_Lora"
    assert env["EVOTOKEN_DTYPE"] == "bfloat16"
    key = next(e for e in c["env"] if e["name"] == "EVOTOKEN_API_KEY")
    assert key["valueFrom"]["secretKeyRef"]["optional"] is True


def test_probes_readiness_on_ready_liveness_on_health_behind_a_startup_probe():
    c = container()
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port["http"] == 8000
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    startup = c["startupProbe"]
    # The 8B load (and a cold-cache download) must fit before liveness may kill the pod.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60


def test_drain_on_termination_fits_in_the_grace_period():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 60


def test_pods_run_as_the_image_user_and_cannot_escalate():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG APP_UID={spec['securityContext']['runAsUser']}" in dockerfile
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False


def test_service_and_scrape_annotations_reach_the_pods():
    deployment = by_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = by_kind("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(8000)
    assert annotations["prometheus.io/path"] == "/metrics"
    pdb = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_hf_cache_claim_is_mounted_at_hf_home():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    (volume,) = spec["volumes"]
    claim = by_kind("PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    env = {e["name"]: e.get("value") for e in container()["env"]}
    (mount,) = container()["volumeMounts"]
    assert mount["mountPath"] == env["HF_HOME"]


def test_kustomize_image_override_targets_the_container_image():
    (image,) = kustomization()["images"]
    assert image["name"] == container()["image"]
    assert kustomization()["namespace"] == by_kind("Namespace")["metadata"]["name"]
