"""Generation through the gpnn batch service (`gpnn eval-dataset --server URL`).

The service's job API is not in this checkout yet, so there is nothing to talk
to: `remote_generator` says so in one line rather than guessing at field names.
"""

from __future__ import annotations

from gpnn.evaluate.runner import Generator


def remote_generator(server: str) -> Generator:
    """A `Generator` that runs the samples on the service at `server`.

    Raises `ValueError` while the service API is not available.
    """
    raise ValueError(
        f"--server is not available yet: this build has no service job API to send "
        f"work to `{server}`; run without --server to generate locally"
    )
