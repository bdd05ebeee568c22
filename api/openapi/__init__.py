"""The OpenAPI document of every route, built from the constants the code answers with.

Hand-built, not Powertools' `enable_validation` (40 ms of GetJobFn's cold start), and no
function imports it. `python -m api.openapi` prints it, `make openapi` writes `openapi.json`;
a test fails when it is stale.
"""

from api.openapi.document import build_document, render

__all__ = ["build_document", "render"]
