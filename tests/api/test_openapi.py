"""schemathesis over /openapi.json, in process: positive and negative requests to every operation;
no 5xx, and every response (status, content type, body) as the document says."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from tam.entrypoints.api import create_app
from tests.api.helpers import AUTH, RecordingDispatcher, make_settings

EXAMPLES_PER_OPERATION = 40  # 13 operations x 2 modes x 40 -> about 1000 requests


class CountingApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


def _app() -> CountingApp:
    return CountingApp(create_app(make_settings(), dispatcher=RecordingDispatcher()))


APP = _app()
# The key goes through the document's security scheme, so negative cases can also leave it out.
CONFIG = SchemathesisConfig.from_dict({"auth": {"openapi": {"apiKey": {"api_key": AUTH["x-api-key"]}}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG, headers=AUTH)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES_PER_OPERATION
)


# The request count below is the module's: all its tests on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("openapi")


@pytest.fixture(scope="module", autouse=True)
def enough_requests() -> Any:
    before = APP.requests
    yield
    assert APP.requests - before >= 500


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_app_keeps_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate()
