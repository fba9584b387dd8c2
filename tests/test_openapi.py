"""/openapi.json describes every route the app serves."""


async def test_every_route_is_described(client):
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    served = set()
    for route in client.app.router.routes():
        info = route.resource.get_info()
        path = info.get("formatter") or info.get("path")
        if route.method == "HEAD" or path is None or path.startswith("/static"):
            continue
        served.add((path, route.method.lower()))
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert served - described == set()
    assert ("/healthz", "get") in described


async def test_cross_site_state_changes_are_refused_for_cookie_sessions(browser_client):
    client = await browser_client("admin")
    resp = await client.post("/import", json={"path": "x.csv"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    assert "cross-site" in (await resp.json())["error"]
    resp = await client.post("/import", json={"path": "x.csv"}, headers={"Origin": "https://evil.example"})
    assert resp.status == 403


async def test_a_bearer_request_needs_no_origin_check(client):
    # A browser never adds Authorization to another site's request by itself.
    resp = await client.post("/import", json={"path": "x.csv"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 404  # past the check: the file is missing
