"""The Kubernetes manifests (deploy/kubernetes/base) made playable by podman 4.3's `kube play`.

    python bench/kube_play.py RENDERED OUT_DIR [API_PORT S3_PORT]

RENDERED: `kubectl kustomize deploy/kubernetes/base` output, or that folder itself where
kubectl is missing (the base is flat: its resources are read as they are).

Writes OUT_DIR/play.yaml and OUT_DIR/secret-<name>.json (bench/containers.sh kube runs
them). Everything that is the project's own is kept as rendered: images (the local builds
of the same names), commands and args, `envFrom` the ConfigMap and the Secret, env, ports,
probes, resources, termination grace, Redis' append-only volume. Changed, each for a
reason of podman's or of this machine's:

- no Namespace, Services nor KEDA ScaledObjects (podman has none of them); pods reach
  each other by pod name (`<deployment>-pod-0`) on one podman network, so the ConfigMap's
  REDIS_URL and S3 endpoint name those pods;
- the StatefulSet (unknown to podman 4.3) becomes a Deployment with a claimed volume;
- an S3 server (the gpnn-s3 image, as in compose) is added: the manifests leave the store
  to the cluster's owner, and their endpoint is a placeholder;
- the Secret goes to `podman secret create` as JSON (4.3 mangles a Secret in the YAML)
  with the S3 key of docker/s3.json in place of the placeholder;
- the GPU workers are left out (no GPU here), and every Deployment runs one replica, the
  API's port published on the host (hostPort).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
S3_KEYS = json.loads((ROOT / "docker" / "s3.json").read_text())["identities"][0]["credentials"][0]


def pod(deployment: str) -> str:
    """The DNS name podman gives the first pod of a Deployment on its network."""
    return f"{deployment}-pod-0"


def s3_deployment(port: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "s3", "labels": {"app.kubernetes.io/name": "s3"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "s3"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "s3"}},
                "spec": {
                    "containers": [
                        {
                            "name": "s3",
                            "image": "gpnn-s3",
                            "imagePullPolicy": "Never",
                            "args": [
                                "server",
                                "-dir=/data",
                                "-s3",
                                "-s3.port=8333",
                                "-s3.config=/etc/seaweedfs/s3.json",
                            ],
                            "ports": [{"containerPort": 8333, "hostPort": port}],
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/data"},
                                {"name": "config", "mountPath": "/etc/seaweedfs/s3.json"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "s3-data"}},
                        {
                            "name": "config",
                            "hostPath": {"path": str(ROOT / "docker" / "s3.json"), "type": "File"},
                        },
                    ],
                },
            },
        },
    }


def claim(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def playable(objects: list[dict], api_port: int, s3_port: int) -> tuple[list[dict], dict]:
    """(objects for `podman kube play`, {secret name: its data for `podman secret create`})."""
    out: list[dict] = [claim("s3-data"), s3_deployment(s3_port)]
    secrets: dict[str, dict[str, str]] = {}
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        obj["metadata"].pop("namespace", None)
        if kind in ("Namespace", "Service", "ScaledObject"):
            continue
        if kind == "Deployment" and name == "worker-gpu":
            continue
        if kind == "ConfigMap":
            obj["data"].update(
                REDIS_URL=f"redis://{pod('redis')}:6379/0",
                GPNN_S3_ENDPOINT_URL=f"http://{pod('s3')}:8333",
                GPNN_S3_PUBLIC_ENDPOINT_URL=f"http://localhost:{s3_port}",
                GPNN_S3_CREATE_BUCKET="true",
            )
        if kind == "Secret":
            data = dict(obj.get("stringData", {}))
            data.update(
                GPNN_S3_ACCESS_KEY_ID=S3_KEYS["accessKey"],
                GPNN_S3_SECRET_ACCESS_KEY=S3_KEYS["secretKey"],
            )
            secrets[name] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            continue
        if kind == "StatefulSet":
            spec = obj["spec"]
            template = spec["template"]["spec"]
            for volume_claim in spec.pop("volumeClaimTemplates", []):
                claim_name = f"{name}-{volume_claim['metadata']['name']}"
                out.append(claim(claim_name))
                template.setdefault("volumes", []).append(
                    {
                        "name": volume_claim["metadata"]["name"],
                        "persistentVolumeClaim": {"claimName": claim_name},
                    }
                )
            spec.pop("serviceName", None)
            obj["kind"] = kind = "Deployment"
        if kind == "Deployment":
            obj["spec"]["replicas"] = 1
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container["image"] = {"redis": "gpnn-redis"}.get(name, container["image"])
                container["imagePullPolicy"] = "Never"
                for port in container.get("ports", []):
                    if name == "api":
                        port["hostPort"] = api_port
        out.append(obj)
    return out, secrets


def read(rendered: Path) -> list[dict]:
    if rendered.is_dir():
        names = yaml.safe_load((rendered / "kustomization.yaml").read_text())["resources"]
        text = "\n---\n".join((rendered / name).read_text() for name in names)
    else:
        text = rendered.read_text()
    return [o for o in yaml.safe_load_all(text) if o]


def main() -> None:
    rendered, folder = Path(sys.argv[1]), Path(sys.argv[2])
    api_port = int(sys.argv[3]) if len(sys.argv) > 3 else 8000
    s3_port = int(sys.argv[4]) if len(sys.argv) > 4 else 8333
    out, secrets = playable(read(rendered), api_port, s3_port)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "play.yaml").write_text(yaml.safe_dump_all(out, sort_keys=False))
    for name, data in secrets.items():
        (folder / f"secret-{name}.json").write_text(json.dumps(data))
    print(" ".join(f"{o['kind']}/{o['metadata']['name']}" for o in out))


if __name__ == "__main__":
    main()
