"""The studio: a small web page served by the API at `/` (templates and static files
shipped in this package; no build step, nothing loaded from the internet)."""
