"""Each system's error body is read into the failure message: what `relay queue` shows."""

from __future__ import annotations

import httpx
import pytest

from relay.model.errors import PermanentDeliveryError
from relay.senders.crm import freshdesk, hubspot, pipedrive, zendesk
from relay.senders.crm.http import classify

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("module", "body", "said"),
    [
        (
            hubspot,
            {"status": "error", "message": "Property values were not valid", "category":
             "VALIDATION_ERROR", "correlationId": "x"},
            "Property values were not valid (VALIDATION_ERROR)",
        ),
        (pipedrive, {"success": False, "error": "unauthorized access", "errorCode": 401},
         "unauthorized access"),
        (
            freshdesk,
            {"description": "Validation failed", "errors": [
                {"field": "email", "message": "It should be a valid email", "code": "invalid_value"}
            ]},
            "Validation failed; email: It should be a valid email",
        ),
        (
            zendesk,
            {"error": "RecordInvalid", "description": "Record validation errors",
             "details": {"requester": [{"description": "Requester: Email is invalid"}]}},
            "RecordInvalid; Record validation errors; requester: Requester: Email is invalid",
        ),
        (zendesk, {"error": {"title": "Forbidden", "message": "You do not have access"}},
         "You do not have access"),
        (zendesk, {"error": {"title": "Invalid attribute"}}, "Invalid attribute"),
    ],
)  # fmt: skip
def test_a_refusal_quotes_the_apis_own_error_text(module: object, body: object, said: str) -> None:
    failure = classify("X", httpx.Response(400, json=body), module.error_text, now=NOW)  # type: ignore[attr-defined]
    assert isinstance(failure, PermanentDeliveryError)
    assert failure.message == f"X answered HTTP 400: {said}"
