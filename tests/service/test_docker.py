"""docker/: checked statically (the suite runs no container engine): paths, settings names,
commands, stages. bench/containers.sh builds and runs them for real with podman (docs/deploy.md)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from gpnn.config import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ROOT = DOCKER.parent
FIELDS = {f"GPNN_{name.upper()}" for name in Settings.model_fields} | {"REDIS_URL", "STORE_URL"}


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker", "Dockerfile.worker-gpu"])
def test_dockerfiles_copy_existing_paths_and_run_gpnn_commands(name):
    text = (DOCKER / name).read_text()
    assert re.search(r"^FROM \S+", text, re.M)
    copied = re.findall(r"^COPY (?!--from=)(\S+) ", text, re.M)
    for source in copied:
        assert (ROOT / source).exists(), f"{name} copies missing {source}"
    # `pip install .` needs every package folder pyproject.toml names.
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    missing = set(package_dirs.values()) - set(copied)
    assert not missing, f"{name} does not copy {sorted(missing)}"
    command = re.search(r'^CMD \["gpnn", "(\w+)"', text, re.M).group(1)
    from gpnn.cli import app

    assert command in {c.name or c.callback.__name__ for c in app.registered_commands}
    for variable in re.findall(r"\b(GPNN_[A-Z0-9_]+)=", text):
        assert variable in FIELDS, f"{name}: unknown setting {variable}"
    if name.endswith("gpu"):
        assert "nvidia/cuda" in text


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker"])
def test_cpu_images_build_on_any_base_in_two_stages(name):
    """`ARG BASE` (python:3.11-slim by default, a Debian-built base where no registry is
    reachable); the project is installed into /opt/venv in the build stage and only that
    venv reaches the runtime stage: no pip run, no source tree, no build tools there."""
    text = (DOCKER / name).read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert [stage.split()[0] for stage in stages] == ["${BASE}", "${BASE}"]
    build, runtime = stages
    assert "AS build" in build.splitlines()[0]
    assert "python3 -m venv /opt/venv" in build and "/opt/venv/bin/pip install" in build
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "PATH=/opt/venv/bin:$PATH" in runtime
    assert not re.search(r"pip install|apt-get|^COPY (?!--from=)", runtime, re.M)
    assert re.search(r"^USER gpnn$", runtime, re.M)


@pytest.mark.parametrize("name", ["Dockerfile.redis", "Dockerfile.s3"])
def test_local_stand_ins_for_the_registry_images(name):
    """What bench/containers.sh builds in place of redis:7-alpine and chrislusf/seaweedfs:
    on the same BASE argument, copying nothing from the build context."""
    text = (DOCKER / name).read_text()
    assert re.search(r"^ARG BASE=\S+$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    assert not re.search(r"^(COPY|ADD) (?!--from=)", text, re.M)


def test_compose_file():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "s3", "api", "worker", "worker-gpu"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert (
        services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1]
        == "yes"
    )
    for name in ("api", "worker", "worker-gpu"):
        service = services[name]
        assert (ROOT / service["build"]["dockerfile"]).exists()
        for variable in service["environment"]:
            assert variable in FIELDS, f"{name}: unknown setting {variable}"
        assert service["environment"]["GPNN_STORE_URL"].startswith("s3://")
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    for name, service in services.items():  # a crashed or lost process comes back by itself
        assert service.get("restart") in ("always", "unless-stopped"), name
    for name in ("worker", "worker-gpu"):
        service = services[name]
        stop_grace_s = int(service["stop_grace_period"].removesuffix("s"))
        assert float(service["environment"]["GPNN_DRAIN_GRACE_S"]) < stop_grace_s, name
        assert service["healthcheck"]["test"][1:] == ["gpnn", "worker", "--check"]
    # The registry images by default; bench/containers.sh names local builds instead.
    assert services["redis"]["image"] == "${REDIS_IMAGE:-redis:7-alpine}"
    assert services["s3"]["image"].startswith("${S3_IMAGE:-chrislusf/seaweedfs")
    for name in ("api", "worker"):
        assert services[name]["image"] == f"gpnn-{name}"
        assert services[name]["build"]["args"]["BASE"] == "${BASE_IMAGE:-python:3.11-slim}"
    # podman-compose starts `deploy.replicas` copies only in replicated mode.
    assert services["worker"]["deploy"]["mode"] == "replicated"
    for volume in services["s3"]["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("./"):
            assert (DOCKER / host).exists()
