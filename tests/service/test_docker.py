"""docker/: checked statically (no Docker engine here): paths, settings names, commands."""

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
    for volume in services["s3"]["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("./"):
            assert (DOCKER / host).exists()
