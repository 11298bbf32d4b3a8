"""The BentoML service: ``bentoml serve serving.service:Umrisk`` (``umrisk serve`` starts it).

At start-up each worker loads the champion version of each model from the MLflow registry (pinned for
its life), the history store, and scores the current population; the API of ``serving.api`` is mounted
under ``/v1`` and the pages of ``serving.ui`` under ``/ui`` (one state for both).
BentoML serves ``/healthz``, ``/readyz`` and ``/livez``. ``/metrics`` is the service's own Prometheus exposition
(``serving.api.metrics_app``) in place of BentoML's, whose HTTP metrics are labelled by the raw request path,
so that random URLs cannot grow the label set.
"""

from __future__ import annotations

import logging

import bentoml
from pydantic import BaseModel, Field

from umrisk.serving.api import app, metrics_app
from umrisk.serving.state import ServiceState, Settings
from umrisk.serving.ui.app import ui_app


class ServeArguments(BaseModel):
    """What ``umrisk serve`` passes to ``bentoml serve --arg``: the number of worker processes. Each worker holds
    the models and, serving batch scores, no population, so workers scale out without the store's memory."""

    workers: int = Field(1, ge=1, le=64)


arguments = bentoml.use_arguments(ServeArguments)


@bentoml.service(name="umrisk", traffic={"timeout": 120}, workers=arguments.workers, metrics={"enabled": False})
@bentoml.asgi_app(metrics_app(), path="/metrics")
@bentoml.asgi_app(app, path="/v1")
@bentoml.asgi_app(ui_app, path="/ui")
class Umrisk:
    def __init__(self) -> None:
        logging.getLogger("umrisk").setLevel(logging.INFO)  # counts, versions and timings; never member data
        app.state.umrisk = ui_app.state.umrisk = ServiceState.build(Settings.from_env())
