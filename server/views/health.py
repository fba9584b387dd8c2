from aiohttp import web

from ..db import ping
from ..auth.roles import public
from ..errors import DATABASE_RETRY_AFTER
from ..keys import events_key, lag_key, pool_key, reads_key, runner_key
from ..openapi import describe

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
@describe("200 when this process is whole: the database answers, its LISTEN connection (live "
          "events) is up and its import runner lives; 503 names each part that is not, under "
          "`problems`. Also how late the event loop runs (p50/p99, ms; over the last "
          "?lag_seconds=N seconds, else about the last minute); with DATABASE_READ_URL, "
          "`read_standby`: up or down (down is not a problem: reads go to the primary)",
          responses={200: "healthy", 503: "{status, problems: {database|events|runner: why}}"})
async def healthz(request: web.Request) -> web.Response:
    app = request.app
    problems = {}
    if not await ping(app[pool_key]):
        problems["database"] = "the database does not answer"
    for part, key in (("events", events_key), ("runner", runner_key)):
        if (why := app[key].problem()) is not None:
            problems[part] = why
    if problems:
        status = "database unavailable" if "database" in problems else "unwell: " + ", ".join(problems)
        return web.json_response({"status": status, "problems": problems}, status=503,
                                 headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    last = _lag_seconds(request.query.get("lag_seconds"))
    body = {"status": "ok", "loop_lag_ms": app[lag_key].percentiles(last)}
    if (reads := app.get(reads_key)) is not None:
        # Informative only: without its standby the process reads the primary and is whole.
        body["read_standby"] = "up" if reads.state.up else "down"
    return web.json_response(body)


def _lag_seconds(raw: str | None) -> float | None:
    try:
        seconds = float(raw) if raw else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 3600 else None
