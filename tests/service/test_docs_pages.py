"""The API's documentation pages work with no internet: every script and style sheet
they load is served by the API itself."""

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_api(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', response.text)
    assert assets, response.text
    for url in assets:
        assert not url.startswith(("http:", "https:", "//")), f"{page} loads {url} from outside"
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 10_000, url
    assert client.get("/openapi.json").json()["info"]["title"] == "gpnn"
