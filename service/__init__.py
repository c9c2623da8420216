"""gpnn.service: the REST API of the batch service (FastAPI)."""

from gpnn.service.app import create_app

__all__ = ["create_app"]
