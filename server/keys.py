"""Every web.AppKey of the app, typed, in one place."""
from __future__ import annotations

from typing import TYPE_CHECKING

import aiopg
from aiohttp import web

from .config import Config

from .capacity import Slots

if TYPE_CHECKING:
    from .auth.cache import AccessCache
    from .customers import Warming
    from .events import EventHub
    from .importer.runner import JobRunner
    from .lag import LoopLag
    from .metrics import Metrics
    from .replica import Reads
    from .tus import Uploads

config_key = web.AppKey("config", Config)
database_url_key = web.AppKey("database_url", str)
pool_key = web.AppKey("pool", aiopg.Pool)
events_key: web.AppKey["EventHub"] = web.AppKey("events")
runner_key: web.AppKey["JobRunner"] = web.AppKey("runner")
lag_key: web.AppKey["LoopLag"] = web.AppKey("loop_lag")
tus_key: web.AppKey["Uploads"] = web.AppKey("tus_uploads")  # resumable (tus) uploads
uploads_key = web.AppKey("uploads", Slots)    # multipart uploads in progress
exports_key = web.AppKey("exports", Slots)    # CSV downloads in progress
metrics_key: web.AppKey["Metrics"] = web.AppKey("metrics")  # this app's Prometheus registry
access_cache_key: web.AppKey["AccessCache"] = web.AppKey("access_cache")  # tokens and sessions seen lately
reads_key: web.AppKey["Reads"] = web.AppKey("reads")  # the read standby (DATABASE_READ_URL), when named
warming_key: web.AppKey["Warming"] = web.AppKey("warming")  # search's relations read into memory at start
