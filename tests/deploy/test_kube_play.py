"""bench/kube_play.py: the manifests made playable by `podman kube play` keep what is the
project's own (images, commands, settings, probes, volumes) and change only what podman
lacks. The play itself runs in bench/containers.sh (docs/deploy.md), not here."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
spec = importlib.util.spec_from_file_location(
    "gpnn_bench_kube_play", ROOT / "bench" / "kube_play.py"
)
kube_play = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kube_play)


def base_objects() -> list[dict]:
    resources = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    return [
        document
        for name in resources
        for document in yaml.safe_load_all((BASE / name).read_text())
        if document
    ]


def test_playable_manifests():
    original = base_objects()
    out, secrets = kube_play.playable(copy.deepcopy(original), api_port=8000, s3_port=8333)
    assert {o["kind"] for o in out} == {"PersistentVolumeClaim", "Deployment", "ConfigMap"}
    deployments = {o["metadata"]["name"]: o for o in out if o["kind"] == "Deployment"}
    assert set(deployments) == {"s3", "redis", "api", "worker-cpu"}
    claims = {o["metadata"]["name"] for o in out if o["kind"] == "PersistentVolumeClaim"}
    for deployment in deployments.values():
        assert deployment["spec"]["replicas"] == 1
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    # Pods find each other by pod name on the podman network.
    (settings,) = [o["data"] for o in out if o["kind"] == "ConfigMap"]
    for variable, deployment in (("REDIS_URL", "redis"), ("GPNN_S3_ENDPOINT_URL", "s3")):
        assert urlsplit(settings[variable]).hostname == kube_play.pod(deployment)
    # The S3 keys are the ones the S3 server of docker/s3.json accepts.
    keys = json.loads((ROOT / "docker" / "s3.json").read_text())["identities"][0]
    decoded = {k: base64.b64decode(v).decode() for k, v in secrets["gpnn-secrets"].items()}
    assert decoded["GPNN_S3_SECRET_ACCESS_KEY"] == keys["credentials"][0]["secretKey"]
    # Commands, settings and probes as written; the images the local builds of those names.
    before = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]
        for o in original
        if o["kind"] in ("Deployment", "StatefulSet")
    }
    for name in ("api", "worker-cpu", "redis"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for field in ("args", "env", "envFrom", "livenessProbe", "volumeMounts"):
            assert container.get(field) == before[name].get(field), (name, field)
        assert container["imagePullPolicy"] == "Never"
    images = {
        name: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for name, d in deployments.items()
    }
    assert images == {
        "s3": "gpnn-s3",
        "redis": "gpnn-redis",
        "api": "gpnn-api",
        "worker-cpu": "gpnn-worker",
    }
    redis_mounts = deployments["redis"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "data", "mountPath": "/data"} in redis_mounts["volumeMounts"]
