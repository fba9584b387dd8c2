"""Query strings validated by pydantic models: a 422 that names the parameter."""
from __future__ import annotations

import json
from typing import TypeVar

import pydantic
from aiohttp import web

from ..errors import validation_body

Model = TypeVar("Model", bound=pydantic.BaseModel)


def query_params(model: type[Model], request: web.Request) -> Model:
    try:
        return model.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise web.HTTPUnprocessableEntity(text=json.dumps(validation_body(exc, "query")),
                                          content_type="application/json") from None
