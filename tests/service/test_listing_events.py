"""The calls the studio needs: listing with cursors and filters (per owner), level
previews only when asked, `Prefer: wait=N`, server-sent events, the page itself."""

from __future__ import annotations

import json

import pytest

from gpnn.worker import keys

from .conftest import (
    derive,
    drain,
    png,
    start_worker,
    stop_process,
    submit,
    submit_batch,
    synthetic,
)

ALICE = {"X-API-Key": "alice-key"}
BOB = {"X-API-Key": "bob-key"}


def files(seed: int = 0):
    return {"source": ("s.png", png(synthetic(seed=seed)), "image/png")}


def test_listing_pages_filters_and_owners(make_client, settings):
    settings = derive(settings, api_keys="alice-key,bob-key")
    client = make_client(settings)
    made = [submit(client, "generate", files(i), headers=ALICE).json()["id"] for i in range(5)]
    retarget = submit(client, "retarget", files(), {"width": 40}, headers=ALICE).json()["id"]
    bob = submit(client, "generate", files(), headers=BOB).json()["id"]
    client.post(f"/v1/jobs/{made[0]}/cancel", headers=ALICE)

    seen, url = [], "/v1/jobs?limit=2"
    while url:
        page = client.get(url, headers=ALICE).json()
        assert len(page["results"]) <= 2
        seen += [job["id"] for job in page["results"]]
        url = page["next"]
    assert seen == [retarget, *reversed(made)]  # newest first, every one once, no Bob
    assert [j["id"] for j in client.get("/v1/jobs", headers=BOB).json()["results"]] == [bob]

    only = client.get("/v1/jobs?task=retarget", headers=ALICE).json()["results"]
    assert [j["id"] for j in only] == [retarget]
    canceled = client.get("/v1/jobs?status=canceled", headers=ALICE).json()["results"]
    assert [j["id"] for j in canceled] == [made[0]]
    first = client.get(f"/v1/jobs/{made[0]}", headers=ALICE).json()["created_at"]
    older = client.get("/v1/jobs", params={"created_before": first}, headers=ALICE).json()
    assert older["results"] == []
    newer = client.get("/v1/jobs", params={"created_after": first}, headers=ALICE).json()
    assert len(newer["results"]) == 6
    bad = client.get("/v1/jobs?cursor=nonsense", headers=ALICE)
    assert bad.status_code == 422 and "`cursor`" in bad.json()["detail"]

    batch = submit_batch(client, "generate", {"a.png": png(synthetic())}, headers=ALICE).json()
    listed = client.get("/v1/batches", headers=ALICE).json()
    assert [b["id"] for b in listed["results"]] == [batch["id"]] and listed["next"] is None
    assert client.get("/v1/batches", headers=BOB).json()["results"] == []
    # A batch's jobs are not in the job listing.
    assert len(client.get("/v1/jobs?limit=100", headers=ALICE).json()["results"]) == 6

    # An expired record leaves the index as it is met.
    client.app.state.ledger.redis.delete(keys.job_key(retarget))
    seen = [j["id"] for j in client.get("/v1/jobs", headers=ALICE).json()["results"]]
    assert retarget not in seen
    index = client.app.state.ledger.redis.zrange(keys.owner_jobs_key("x"), 0, -1)
    assert index == []


def test_previews_only_when_asked(client, settings):
    store = client.app.state.ledger.store
    plain = submit(client, "generate", files(), {"depth": 2}, samples=2).json()
    asked = submit(client, "generate", files(), {"depth": 2}, samples=2, previews="true").json()
    drain(settings)
    plain = client.get(f"/v1/jobs/{plain['id']}").json()
    asked = client.get(f"/v1/jobs/{asked['id']}").json()
    assert plain["status"] == asked["status"] == "succeeded"
    assert plain["previews"] == []
    assert list(store.list(f"jobs/{plain['id']}/previews/")) == []
    levels = {(p["sample"], p["level"]) for p in asked["previews"]}
    assert levels == {(s, level) for s in range(2) for level in range(3)}
    assert len(list(store.list(f"jobs/{asked['id']}/previews/"))) == 6
    for preview in asked["previews"]:
        answer = client.get(preview["url"])
        assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
    assert client.get(f"/v1/jobs/{asked['id']}/previews/0/9").status_code == 404


def test_preview_side_is_bounded(client, settings):
    import cv2
    import numpy as np

    big = {"source": ("b.png", png(synthetic(300, 320)), "image/png")}
    job = submit(client, "generate", big, {"depth": 1}, previews="true").json()
    drain(settings)
    job = client.get(f"/v1/jobs/{job['id']}").json()
    finest = next(p for p in job["previews"] if p["level"] == 1)
    data = client.get(finest["url"]).content
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert max(image.shape[:2]) == 256


@pytest.fixture
def worker(settings, tmp_path):
    process = start_worker(settings, log=tmp_path / "worker.log")
    yield process
    stop_process(process)


def test_prefer_wait_answers_with_the_finished_job(client, settings, worker):
    # The job ends within the wait: 200 with the finished job.
    answer = submit(client, "generate", files(), {"depth": 2}, headers={"Prefer": "wait=20"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Preference-Applied"] == "wait=20"
    assert answer.json()["status"] == "succeeded" and answer.json()["outputs"]


def test_events_follow_a_job_from_the_queue_to_the_end(client, settings, tmp_path):
    # No worker runs until the stream is open, so the job cannot end before the
    # stream follows it (on a loaded machine it once did: a stream that opens after
    # the end only gets the last snapshot).
    job = submit(client, "generate", files(1), {"depth": 2, "iterations": 2}, previews="true")
    job_id = job.json()["id"]
    events = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        worker = start_worker(settings, log=tmp_path / "worker.log")
        try:
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))
        finally:
            stop_process(worker)
    names = [n for n, _ in events]
    assert names[0] == "job" and names[-1] == "done"
    assert events[0][1]["status"] == "queued"
    assert events[-1][1]["status"] == "succeeded"
    assert "progress" in names
    previews = {(d["sample"], d["level"]) for n, d in events if n == "preview"}
    assert previews == {(0, 0), (0, 1), (0, 2)}
    statuses = [d["status"] for n, d in events if n == "job"]
    assert statuses[-1] == "succeeded"


def test_prefer_wait_times_out_with_202(client, settings):
    answer = submit(client, "generate", files(), headers={"Prefer": "wait=1"})
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    assert answer.headers["Preference-Applied"] == "wait=1"


def test_studio_page_and_plan(client, settings):
    page = client.get("/")
    assert page.status_code == 200 and "gpnn studio" in page.text
    config = json.loads(page.text.split('type="application/json">')[1].split("</script>")[0])
    generate = config["tasks"]["generate"]["schema"]["properties"]
    assert generate["patch_size"]["default"] == 7 and generate["patch_size"]["maximum"] == 15
    assert generate["alpha"]["default"] == "Infinity"
    assert set(config["tasks"]) == {"generate", "retarget", "analogy", "inpaint", "collage", "edit"}
    assert config["tasks"]["inpaint"]["inputs"] == ["source", "mask"]
    assert "color" in config["tasks"]["inpaint"]["schema"]["properties"]
    assert config["tasks"]["retarget"]["schema"]["properties"]["ratio"]["default"] == 0.8
    for asset in ("studio.js", "studio.css"):
        assert client.get(f"/studio/static/{asset}").status_code == 200

    plan = client.post(
        "/studio/plan", json={"task": "generate", "params": {}, "height": 167, "width": 250}
    ).json()
    assert plan["levels"] == plan["depth"] + 1 and plan["problems"] == []
    bad = client.post(
        "/studio/plan",
        json={"task": "generate", "params": {"patch_size": 4}, "height": 64, "width": 64},
    )
    refused = submit(client, "generate", files(), {"patch_size": 4})
    assert bad.status_code == refused.status_code == 422
    assert bad.json()["detail"] == refused.json()["detail"]


@pytest.mark.parametrize("task", ["generate", "inpaint", "edit"])
def test_plan_depth_is_the_engines(client, task):
    """The depth the page shows is the one the engine takes (its `levels`)."""
    import numpy as np

    from gpnn.core import params_for, run_task

    image = synthetic(60, 90).astype(np.float32) / 255
    values = {"patch_size": 5, "iterations": 1, "coarsest_iterations": 1}
    inputs = {"source": image}
    hole = None
    if task == "inpaint":
        inputs["mask"] = np.zeros(image.shape[:2], bool)
        inputs["mask"][20:30, 30:45] = True
        hole = [10, 15]
    if task == "edit":
        values["depth"] = None
        inputs["edited"] = image[:, ::-1].copy()
    seen = []
    run_task(params_for(task, **values), inputs, progress=lambda p: seen.append(p.levels))
    plan = client.post(
        "/studio/plan",
        json={"task": task, "params": values, "height": 60, "width": 90, "hole": hole},
    ).json()
    assert plan["levels"] == seen[0]


def test_a_collages_plan_is_of_its_sources_side_by_side(client):
    """The page sends every source's size; the plan's levels and output are the
    engine's, and its estimate the one the API gives the job."""
    import numpy as np

    from gpnn.core import params_for, run_task

    images = [synthetic(60, 90), synthetic(40, 80, seed=1)]
    values = {"patch_size": 5, "iterations": 1, "coarsest_iterations": 1}
    seen = []
    [output] = run_task(
        params_for("collage", **values),
        {"sources": [i.astype(np.float32) / 255 for i in images]},
        progress=lambda p: seen.append(p.levels),
    )
    sizes = {"sources": [list(i.shape[:2]) for i in images]}
    plan = client.post(
        "/studio/plan",
        json={"task": "collage", "params": values, "height": 60, "width": 90, "sizes": sizes},
    ).json()
    assert plan["levels"] == seen[0] and tuple(plan["output"]) == output.shape[:2]
    sources = [("sources", (f"{n}.png", png(i), "image/png")) for n, i in enumerate(images)]
    job = submit(client, "collage", sources, values).json()
    assert plan["estimate"]["work_mpi"] == job["estimate"]["work_mpi"]


def test_cookie_key_reads_but_never_writes(make_client, settings):
    client = make_client(derive(settings, api_keys="alice-key"))
    job = submit(client, "generate", files(), headers=ALICE).json()
    client.cookies.set("gpnn_key", "alice-key")
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 401
    assert submit(client, "generate", files()).status_code == 401
    client.cookies.set("gpnn_key", "wrong")
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 403


@pytest.mark.parametrize(
    ("task", "sizes", "message"),
    [
        ("analogy", {}, "needs the size of `structure`"),
        ("collage", {}, "needs the size of `sources`"),
        ("collage", {"sources": [[60, 90]]}, "at least two images"),
    ],
)
def test_a_plan_without_the_images_it_is_of_says_which(client, task, sizes, message):
    """Before the structure or the collage's images are chosen there is no plan yet:
    a 422 naming them (it was a 500)."""
    answer = client.post(
        "/studio/plan",
        json={"task": task, "params": {}, "height": 60, "width": 90, "sizes": sizes},
    )
    assert answer.status_code == 422 and message in answer.json()["detail"], answer.text
