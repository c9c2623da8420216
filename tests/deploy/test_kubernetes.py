"""deploy/kubernetes: the kustomization renders, every object passes its schema, and the
objects agree with the code (settings, queue key, probe paths, drain grace).

Built-in kinds are checked by `kubernetes-validate` (strict: unknown fields fail) against
two Kubernetes versions; KEDA's ScaledObject by `keda-scaledobject.schema.json`, written
from KEDA's documentation. The base is flat (resources, a namespace and labels, no
patches), so `render` reads it directly; where `kubectl` (or `kustomize`) is installed the
test also compares that rendering with kustomize's own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from redis import Redis
from rq import Queue

from gpnn.config import Settings
from gpnn.service.routes.health import router as health_router
from gpnn.worker.runner import Role, WorkerPool, queue_names

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
KEDA_SCHEMA = json.loads((Path(__file__).parent / "keda-scaledobject.schema.json").read_text())
SETTINGS = {f"GPNN_{name.upper()}" for name in Settings.model_fields} | {"REDIS_URL", "STORE_URL"}
# The oldest Kubernetes still commonly run, and the newest the checker knows.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
CLUSTER_SCOPED = {"Namespace"}
KNOWN_KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources"}


def render(folder: Path) -> list[dict]:
    """The objects `kustomize build folder` gives for a flat kustomization."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_KUSTOMIZE_FIELDS
    assert not unknown, f"render() does not apply {unknown}; extend it or keep the base flat"
    labels = {}
    for entry in kustomization.get("labels", []):
        assert not entry.get("includeSelectors") and not entry.get("includeTemplates")
        labels.update(entry["pairs"])
    objects = []
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((folder / name).read_text()):
            if document is None:
                continue
            metadata = document.setdefault("metadata", {})
            if labels:
                metadata["labels"] = {**metadata.get("labels", {}), **labels}
            if "namespace" in kustomization and document["kind"] not in CLUSTER_SCOPED:
                metadata["namespace"] = kustomization["namespace"]
            objects.append(document)
    return objects


OBJECTS = render(BASE)


def find(kind: str, name: str | None = None) -> list[dict]:
    found = [o for o in OBJECTS if o["kind"] == kind]
    return [o for o in found if o["metadata"]["name"] == name] if name else found


def one(kind: str, name: str) -> dict:
    (found,) = find(kind, name)
    return found


def config() -> dict[str, str]:
    """The environment the ConfigMap and the Secret give every gpnn container."""
    return {
        **one("ConfigMap", "gpnn-settings")["data"],
        **one("Secret", "gpnn-secrets")["stringData"],
    }


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]


def workers() -> list[dict]:
    return [d for d in find("Deployment") if containers(d)[0]["args"][:2] == ["gpnn", "worker"]]


def key(objects: list[dict]) -> list[str]:
    return sorted(json.dumps(o, sort_keys=True) for o in objects)


def test_render_matches_kustomize():
    kubectl, kustomize = shutil.which("kubectl"), shutil.which("kustomize")
    if kustomize:
        command = [kustomize, "build", str(BASE)]
    elif kubectl:
        command = [kubectl, "kustomize", str(BASE)]
    else:
        pytest.skip("neither kustomize nor kubectl is installed: only render() ran")
    built = list(
        yaml.safe_load_all(subprocess.run(command, capture_output=True, check=True).stdout)
    )
    assert key(built) == key(OBJECTS)


def test_every_kind_is_there():
    kinds = {(o["kind"], o["metadata"]["name"]) for o in OBJECTS}
    assert {
        ("Namespace", "gpnn"),
        ("ConfigMap", "gpnn-settings"),
        ("Secret", "gpnn-secrets"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("Deployment", "api"),
        ("Service", "api"),
        ("Deployment", "worker-cpu"),
        ("Deployment", "worker-gpu"),
        ("ScaledObject", "worker-cpu"),
        ("ScaledObject", "worker-gpu"),
    } <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_pass_the_kubernetes_schema(version):
    checked = 0
    for document in OBJECTS:
        if document["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked == len(OBJECTS) - len(find("ScaledObject"))


def test_scaled_objects_pass_the_keda_schema():
    for scaled in find("ScaledObject"):
        jsonschema.validate(scaled, KEDA_SCHEMA)


def test_every_environment_variable_is_a_setting_with_a_valid_value(monkeypatch):
    names = set(config())
    for deployment in find("Deployment"):
        for container in containers(deployment):
            names |= {variable["name"] for variable in container.get("env", [])}
            sources = {
                s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]
            }
            assert sources == {"gpnn-settings", "gpnn-secrets"}
    assert names <= SETTINGS, f"not settings: {sorted(names - SETTINGS)}"
    for deployment in find("Deployment"):
        environment = config()
        for container in containers(deployment):
            environment |= {v["name"]: v["value"] for v in container.get("env", [])}
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        Settings()  # every value parses and passes the settings' checks


def test_workers_drain_within_the_pod_termination_grace():
    drain_grace_s = float(config()["GPNN_DRAIN_GRACE_S"])
    assert {d["metadata"]["name"] for d in workers()} == {"worker-cpu", "worker-gpu"}
    for deployment in workers():
        grace_s = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # The supervisor hands back at the drain grace and kills leftovers a margin later.
        assert grace_s >= drain_grace_s + WorkerPool.STOP_MARGIN_S, deployment["metadata"]["name"]


def test_keda_scales_each_worker_deployment_on_the_rq_queue_list():
    settings = Settings(**{"queue_name": config().get("GPNN_QUEUE_NAME", "gpnn")})
    (queue,) = queue_names(settings, Role.jobs)
    list_key = Queue(queue, connection=Redis()).key  # RQ's own name of the list
    redis_service = one("Service", "redis")
    namespace = redis_service["metadata"]["namespace"]
    port = redis_service["spec"]["ports"][0]["port"]
    targets = {}
    for scaled in find("ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        assert one("Deployment", target)
        targets[target] = scaled["spec"]
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            assert trigger["metadata"]["listName"] == list_key
            # KEDA runs in its own namespace: the address must be the Service's full name.
            address = f"{redis_service['metadata']['name']}.{namespace}.svc.cluster.local:{port}"
            assert trigger["metadata"]["address"] == address
    assert set(targets) == {d["metadata"]["name"] for d in workers()}
    assert targets["worker-gpu"]["minReplicaCount"] == 0
    assert targets["worker-cpu"]["minReplicaCount"] >= 1  # webhooks are always delivered


def test_gpu_workers_ask_for_a_gpu_and_run_on_gpu_nodes():
    deployment = one("Deployment", "worker-gpu")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert container["args"][-2:] == ["--device", "cuda"]
    assert {v["name"]: v["value"] for v in container["env"]}["GPNN_DEVICE"] == "cuda"
    cpu = one("Deployment", "worker-cpu")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(cpu)


def test_api_probes_use_the_health_routes_on_the_served_port():
    routes = {route.path for route in health_router.routes}
    (container,) = containers(one("Deployment", "api"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in routes
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes
    port = int({v["name"]: v["value"] for v in container["env"]}["GPNN_PORT"])
    (declared,) = container["ports"]
    assert declared["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["port"] == declared["name"]
    service = one("Service", "api")
    assert service["spec"]["ports"][0]["targetPort"] == declared["name"]
    assert service["spec"]["selector"].items() <= (
        one("Deployment", "api")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_redis_keeps_an_append_only_file_on_a_persistent_volume():
    redis = one("StatefulSet", "redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert args[args.index("--dir") + 1] == mount["mountPath"]
    url = urlsplit(config()["REDIS_URL"])
    service = one("Service", "redis")
    assert url.hostname == service["metadata"]["name"]
    assert url.port == service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
    assert (
        service["spec"]["selector"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
