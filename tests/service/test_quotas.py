"""Cheap requests that would cost a lot, and per-owner quotas: refused before any
input is written, with 413 or 429 (`Retry-After`)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from gpnn.store import open_store

from .conftest import CHEAP, derive, drain, png, submit, synthetic
from .test_limits import png_header_only

SOURCE = {"source": ("s.png", png(synthetic()), "image/png")}


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def batch(client, archive: bytes, params=None, headers=None, samples: int = 1):
    return client.post(
        "/v1/batches",
        data={"task": "generate", "params": json.dumps(params or CHEAP), "samples": str(samples)},
        files={"archive": ("in.zip", archive, "application/zip")},
        headers=headers,
    )


def stored(settings) -> list[str]:
    return open_store(settings.store_url).list("batches/")


def test_a_small_zip_that_expands_past_the_batch_limit_writes_nothing(make_client, settings):
    limited = derive(settings, max_batch_bytes=4 * 1024 * 1024)
    client = make_client(limited)
    zeros = b"\x00" * (1024 * 1024)
    archive = zip_of({f"{i}.png": zeros for i in range(8)})  # 8 MiB in a few KB
    assert len(archive) < 64 * 1024
    answer = batch(client, archive)
    assert answer.status_code == 413 and "expands to" in answer.json()["detail"]
    assert stored(limited) == []


def test_a_header_that_claims_a_huge_image_is_refused_by_its_work(make_client, settings):
    client = make_client(derive(settings, max_job_work=50))
    answer = submit(client, "generate", {"source": ("big.png", png_header_only(2048, 2048))})
    # The pixel limit admits 2048 x 2048; its generation would be about 96 MPI.
    assert answer.status_code in (413, 422)
    archive = zip_of({"ok.png": png(synthetic()), "big.png": png_header_only(2048, 2048)})
    answer = batch(client, archive, params={"iterations": 10})
    assert answer.status_code == 413, answer.text
    assert (
        "big.png" in answer.json()["detail"] and "megapixel-iterations" in answer.json()["detail"]
    )
    assert stored(settings) == []


def test_job_work_is_estimated_from_size_iterations_and_samples(make_client, settings):
    client = make_client(derive(settings, max_job_work=1.0))
    files = {"source": ("s.png", png(synthetic(200, 200)), "image/png")}
    assert submit(client, "generate", files, {"iterations": 1}, samples="1").status_code == 202
    refused = submit(client, "generate", files, {"iterations": 10}, samples="4")
    assert refused.status_code == 413
    assert "fewer samples" in refused.json()["detail"]


def test_all_pixels_of_a_batch_together_are_bounded(make_client, settings):
    client = make_client(derive(settings, max_batch_pixels=3 * 32 * 48))
    archive = zip_of({f"{i}.png": png(synthetic(seed=i)) for i in range(4)})
    answer = batch(client, archive)
    assert answer.status_code == 413 and "pixels in all" in answer.json()["detail"]


def test_submissions_over_the_rate_get_429_with_retry_after(make_client, settings):
    client = make_client(derive(settings, rate_limit_per_minute=3, api_keys="a,b"))
    a, b = {"X-API-Key": "a"}, {"X-API-Key": "b"}
    for _ in range(3):
        assert submit(client, "generate", SOURCE, headers=a).status_code == 202
    refused = submit(client, "generate", SOURCE, headers=a)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert submit(client, "generate", SOURCE, headers=b).status_code == 202  # per owner


@pytest.mark.parametrize("finish", ["drain", "cancel"])
def test_unfinished_jobs_per_owner_are_bounded(make_client, settings, finish):
    client = make_client(derive(settings, max_active_jobs=2))
    jobs = [submit(client, "generate", SOURCE).json() for _ in range(2)]
    refused = submit(client, "generate", SOURCE)
    assert refused.status_code == 429 and "unfinished" in refused.json()["detail"]
    archive = zip_of({"a.png": png(synthetic())})
    assert batch(client, archive).status_code == 429
    if finish == "drain":
        drain(settings)
    else:
        for job in jobs:
            client.post(f"/v1/jobs/{job['id']}/cancel")
    assert submit(client, "generate", SOURCE).status_code == 202


def test_a_collages_work_counts_all_its_sources(make_client, settings):
    """A collage refines its sources side by side: many sources, each within the limit,
    are refused when together they are over it, and the estimate says so."""
    from gpnn.core import params_for
    from gpnn.core.cost import work

    params = params_for("collage", **CHEAP)
    limit = 2.5 * work(params, (48, 64))  # two 48 x 64 sources side by side fit, four don't
    client = make_client(derive(settings, max_job_work=limit))

    def sources(count):
        return [
            ("sources", (f"{i}.png", png(synthetic(48, 64, seed=i)), "image/png"))
            for i in range(count)
        ]

    accepted = submit(client, "collage", sources(2))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["estimate"]["work_mpi"] == pytest.approx(
        work(params, (48, 128)), rel=0.01
    )
    refused = submit(client, "collage", sources(4))
    assert refused.status_code == 413 and "megapixel-iterations" in refused.json()["detail"]


def test_an_analogys_work_is_of_its_structure_and_both_passes(make_client, settings):
    """The output has the structure's size and the refinement runs the pyramid again: a
    small source cannot carry a large structure past the limit."""
    from gpnn.core import params_for
    from gpnn.core.cost import work

    once = params_for("analogy", **CHEAP, refine=False)
    limit = 1.5 * work(once, (48, 64))  # one pass at the structure's size fits, two don't
    client = make_client(derive(settings, max_job_work=limit))
    files = [
        ("source", ("a.png", png(synthetic(24, 32)), "image/png")),
        ("structure", ("b.png", png(synthetic(48, 64, seed=1)), "image/png")),
    ]
    refused = submit(client, "analogy", files)
    assert refused.status_code == 413 and "megapixel-iterations" in refused.json()["detail"]
    accepted = submit(client, "analogy", files, {"refine": False})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["estimate"]["work_mpi"] == pytest.approx(work(once, (48, 64)), rel=0.01)


def test_a_retarget_over_the_limit_is_told_to_ask_for_a_smaller_output(make_client, settings):
    """Its work is of the output it asks for: the message names the size options."""
    from gpnn.core import params_for
    from gpnn.core.cost import work

    limit = 2 * work(params_for("retarget", **CHEAP, width=64), (32, 48))
    client = make_client(derive(settings, max_job_work=limit))
    refused = submit(client, "retarget", SOURCE, {"width": 640})
    detail = refused.json()["detail"]
    assert refused.status_code == 413 and "megapixel-iterations" in detail
    assert "a smaller `height` or `width` (the output is 640x32)" in detail, detail
