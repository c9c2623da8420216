"""Several hosts for real: Redis and S3, the API and the workers each on a network
namespace of their own (bench/hosts.py makes them). A batch of 100 jobs runs across two
worker hosts; mid-batch one host is cut off (link down, every process SIGKILLed) and a
new one joins. Every job ends with its outputs exactly once, and the manifest names the
host that ran it."""

from __future__ import annotations

import importlib.util
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hosts.py"
spec = importlib.util.spec_from_file_location("gpnn_bench_hosts", BENCH)
hosts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hosts)

pytestmark = pytest.mark.skipif(
    hosts.unavailable() is not None, reason=f"network namespaces: {hosts.unavailable()}"
)

JOBS = 100


@pytest.fixture
def cluster(tmp_path):
    made = hosts.Cluster(tmp_path)
    try:
        yield made
    finally:
        tag = made.net.tag
        made.close()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"g{tag}-" not in left, "namespaces left behind"


def test_a_batch_survives_losing_a_worker_host_and_gaining_one(cluster):
    audit = hosts.run_fault(cluster, JOBS, processes=2)
    assert audit["jobs"] == JOBS
    assert audit["lost"] == []
    assert audit["duplicated"] == []
    ran = {host: len(jobs) for host, jobs in audit["hosts"].items()}
    assert set(ran) == {"w1", "w2", "w3"}, ran  # the lost host's early jobs, the new one's
    assert sum(ran.values()) == JOBS
    cut = datetime.fromisoformat(audit["cut_at_iso"])
    for entry in audit["manifest"]["jobs"]:
        if entry["worker_host"] == "w1":  # a job the lost host is named for ended before
            assert datetime.fromisoformat(entry["finished_at"]) < cut, entry
