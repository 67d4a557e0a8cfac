"""config/kubernetes/: every manifest, and the kustomize build of them all, validated against
the Kubernetes schemas (kubernetes-validate, offline, strict: unknown fields are errors), and
checked against what the proxy and the image need."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from proxy.config import OPTIONS, load_config
from tests.dockerfile import stages
from tests.needs import missing

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "config" / "kubernetes"
# The newest schemas kubernetes-validate ships, and the oldest Kubernetes still maintained
# by most providers when this was written.
KUBERNETES_VERSIONS = (kubernetes_validate.latest_version(), "1.30.0")
PLANNED_VARIABLES = {"SMARTDOC_PROXY_INBOUND_KEYS_FILE"}
APP = {"app.kubernetes.io/name": "smartdoc-proxy"}

Resource = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


def load_all(text: str) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize_command() -> list[str]:
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    return missing("neither kustomize nor kubectl is installed (.ci/run installs kubectl)")


@pytest.fixture(scope="module")
def built() -> list[Resource]:
    result = subprocess.run(
        [*kustomize_command(), str(MANIFESTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


@pytest.fixture(scope="module")
def resources() -> dict[str, Resource]:
    """The manifests as written, by kind."""
    found: dict[str, Resource] = {}
    for path in manifest_files():
        for doc in load_all(path.read_text(encoding="utf-8")):
            found[doc["kind"]] = doc
    return found


def validate(resource: Resource, version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_each_manifest_is_valid(path: Path, version: str) -> None:
    for resource in load_all(path.read_text(encoding="utf-8")):
        validate(resource, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kustomize_build_is_valid(built: list[Resource], version: str) -> None:
    for resource in built:
        validate(resource, version)


def test_the_kustomization_names_every_manifest_and_sets_the_image(
    built: list[Resource], resources: dict[str, Resource]
) -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))

    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]
    assert sorted(r["kind"] for r in built) == sorted(resources)
    (deployment,) = [r for r in built if r["kind"] == "Deployment"]
    (image,) = kustomization["images"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"


def test_the_validator_rejects_what_the_schemas_do_not_allow(
    resources: dict[str, Resource],
) -> None:
    typo = resources["Deployment"] | {"spec": resources["Deployment"]["spec"] | {"replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo, KUBERNETES_VERSIONS[0])


@pytest.fixture(scope="module")
def pod(resources: dict[str, Resource]) -> Resource:
    spec: Resource = resources["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: Resource) -> Resource:
    (proxy,) = pod["containers"]
    assert isinstance(proxy, dict)
    return proxy


def test_two_or_more_replicas_spread_and_kept_through_disruptions(
    resources: dict[str, Resource],
) -> None:
    deployment, budget = resources["Deployment"], resources["PodDisruptionBudget"]

    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert budget["spec"]["minAvailable"] >= 1
    assert budget["spec"]["selector"]["matchLabels"] == APP


def test_probes_ask_readyz_and_healthz_on_the_image_s_port(container: Resource) -> None:
    image_port = int(stages(ROOT / "Dockerfile")[-1].last("EXPOSE"))
    port = next(port for port in container["ports"] if port["name"] == "http")

    assert port["containerPort"] == image_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/_proxy/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/_proxy/healthz", "port": "http"}
    assert port["name"] == "http"


def test_the_pod_runs_as_the_image_s_user_with_nothing_it_does_not_need(
    pod: Resource, container: Resource
) -> None:
    uid, gid = stages(ROOT / "Dockerfile")[-1].last("USER").split(":")
    security = container["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(uid),
        int(gid),
    )
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False


def test_requests_and_limits_are_set(container: Resource) -> None:
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


def secret_files(pod: Resource, container: Resource) -> Iterator[tuple[str, str, str]]:
    """(path in the container, Secret, key) of every file a Secret puts in the container."""
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for volume in pod["volumes"]:
        mount = mounts[volume["name"]]
        for source in volume["projected"]["sources"]:
            for item in source["secret"]["items"]:
                yield f"{mount['mountPath']}/{item['path']}", source["secret"]["name"], item["key"]


def test_the_secret_and_the_inbound_keys_are_files_from_secrets_that_rotation_reaches(
    pod: Resource, container: Resource
) -> None:
    env = {e["name"]: e.get("value") for e in container["env"]}
    files = {path: secret for path, secret, _ in secret_files(pod, container)}

    assert env["SMARTDOC_CLIENT_SECRET_FILE"] in files
    assert env["SMARTDOC_PROXY_INBOUND_KEYS_FILE"] in files
    assert len(set(files.values())) == 2
    # The kubelet updates a Secret volume in a running pod, but never a subPath mount.
    assert all("subPath" not in mount for mount in container["volumeMounts"])
    assert all(mount["readOnly"] for mount in container["volumeMounts"])
    assert not any("valueFrom" in e for e in container["env"])


def test_its_variables_are_options_of_the_proxy(
    resources: dict[str, Resource], container: Resource
) -> None:
    known = {option.env for option in OPTIONS} | PLANNED_VARIABLES
    config_map = resources["ConfigMap"]["data"]
    named = {e["name"] for e in container["env"]} | set(config_map)

    assert named <= known
    config = load_config({}, {"SMARTDOC_CLIENT_SECRET": "x"} | config_map)
    assert config.log_format == "json"


def test_the_termination_grace_covers_the_pre_stop_and_the_proxy_s_grace(
    pod: Resource, container: Resource
) -> None:
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    grace = load_config({}, {"SMARTDOC_CLIENT_SECRET": "x", "SMARTDOC_CLIENT_ID": "x"})

    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + grace.shutdown_grace_seconds


def test_prometheus_is_told_where_the_metrics_are(
    resources: dict[str, Resource], container: Resource
) -> None:
    annotations = resources["Deployment"]["spec"]["template"]["metadata"]["annotations"]

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/_proxy/metrics"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SMARTDOC_PROXY_METRICS_LISTEN"].endswith(f":{ports['metrics']}")


def test_the_service_reaches_the_pods_on_their_port(resources: dict[str, Resource]) -> None:
    service, deployment = resources["Service"], resources["Deployment"]

    assert service["spec"]["selector"] == APP
    assert deployment["spec"]["selector"]["matchLabels"] == APP
    assert deployment["spec"]["template"]["metadata"]["labels"] == APP
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_the_network_policy_admits_the_namespace_and_lets_out_only_dns_and_https(
    resources: dict[str, Resource],
) -> None:
    policy = resources["NetworkPolicy"]["spec"]

    assert policy["podSelector"]["matchLabels"] == APP
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    # A bare podSelector selects pods of the policy's own namespace, and no others.
    assert ingress["from"] == [{"podSelector": {}}]
    assert ingress["ports"] == [
        {"port": 8080, "protocol": "TCP"},
        {"port": 9090, "protocol": "TCP"},
    ]
    allowed_out = {
        (port["port"], port["protocol"]) for rule in policy["egress"] for port in rule["ports"]
    }
    assert allowed_out == {(53, "UDP"), (53, "TCP"), (443, "TCP")}


def test_the_autoscaler_scales_the_deployment_on_cpu(
    resources: dict[str, Resource], container: Resource
) -> None:
    autoscaler, deployment = resources["HorizontalPodAutoscaler"]["spec"], resources["Deployment"]

    assert autoscaler["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert autoscaler["minReplicas"] >= 2
    (metric,) = autoscaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is a share of the request: without one the autoscaler cannot act.
    assert "cpu" in container["resources"]["requests"]
