"""One tenant can reach nothing of another's: every route that takes a job or batch id
answers 404 to another API key (as if the id did not exist), whatever the method."""

from __future__ import annotations

import re

from .conftest import derive, drain, png, submit, submit_batch, synthetic

ALICE = {"X-API-Key": "alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


def test_every_route_with_an_id_is_404_to_another_owner(make_client, settings):
    client = make_client(derive(settings, api_keys="alice-key,bob-key"))
    files = {"source": ("s.png", png(synthetic()), "image/png")}
    job = submit(client, "generate", files, headers=ALICE, previews="true").json()
    members = {"a.png": png(synthetic(seed=1))}
    batch = submit_batch(client, "generate", members, headers=ALICE).json()
    drain(settings)
    values = {
        "job_id": job["id"],
        "batch_id": batch["id"],
        "n": "0",
        "name": "index.html",
        "input_name": "source",
        "level": "0",
    }

    routes = []
    for template, operations in client.app.openapi()["paths"].items():
        path = re.sub(r"{(\w+)(?::path)?}", lambda m: values[m.group(1)], template)
        if path == template:
            continue
        for method in operations:
            routes.append((method.upper(), path))
    assert len(routes) >= 8, routes

    for method, path in routes:
        answer = client.request(method, path, headers=BOB)
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
        assert "unknown or expired" in answer.json()["detail"]  # as if there were no such id
    # The same requests by the owner reach the job and the batch (the paths are real).
    for method, path in routes:
        answer = client.request(method, path, headers=ALICE, follow_redirects=False)
        assert answer.status_code in (200, 202, 307, 409), (method, path, answer.text)
