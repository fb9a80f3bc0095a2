"""Fakes of the HubSpot, Pipedrive, Freshdesk and Zendesk APIs, from their public references:
the endpoints the relay uses, their authentication, request and response shapes, error
bodies and rate-limit headers. Each checks every request it gets (see crm_fake)."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from tests.support.crm_fake import FakeApi, Invalid, Reply, Request, need

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _basic(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        return base64.b64decode(value[6:]).decode()
    except ValueError:
        return None


class HubSpotApi(FakeApi):
    """CRM v3: contacts batch upsert (idProperty=email), notes create/read/search/update."""

    system = "hubspot"
    routes = (
        ("POST", r"/crm/v3/objects/contacts/batch/upsert", "upsert_contacts"),
        ("GET", r"/crm/v3/objects/contacts", "list_contacts"),
        ("POST", r"/crm/v3/objects/notes/search", "search_notes"),
        ("POST", r"/crm/v3/objects/notes", "create_note"),
        ("GET", r"/crm/v3/objects/notes/(\d+)", "get_note"),
        ("PATCH", r"/crm/v3/objects/notes/(\d+)", "update_note"),
    )
    MAX_VALUE = 65_536

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.contacts: dict[str, dict[str, Any]] = {}  # by id
        self.notes: dict[str, dict[str, Any]] = {}

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def error_body(self, status: int, message: str, field_name: str | None) -> Any:
        category = {404: "OBJECT_NOT_FOUND", 429: "RATE_LIMITS"}.get(status, "VALIDATION_ERROR")
        return {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        }

    def unauthorized(self) -> Reply:
        return Reply(
            401,
            {
                "status": "error",
                "message": "Authentication credentials not found. This API supports OAuth 2.0"
                " authentication and you can find more details at https://developers.hubspot.com",
                "correlationId": str(uuid.uuid4()),
                "category": "INVALID_AUTHENTICATION",
            },
        )

    def rate_limited(self, seconds: int) -> Reply:
        return Reply(
            429,
            {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "SECONDLY",
            },
            {"Retry-After": str(seconds), "X-HubSpot-RateLimit-Remaining": "0"},
        )

    def common_headers(self) -> dict[str, str]:
        return {"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Max": "190"}

    def _properties(self, props: Any) -> dict[str, str]:
        need(isinstance(props, dict), "properties must be an object")
        for name, value in props.items():
            need(isinstance(value, str), f"Property values were not valid: {name} is not a string")
            need(len(value) <= self.MAX_VALUE, f"{name} is longer than {self.MAX_VALUE}")
        return dict(props)

    def _record(self, object_id: str, props: dict[str, str]) -> dict[str, Any]:
        return {
            "id": object_id,
            "properties": props,
            "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": "2024-01-01T00:00:00Z",
            "archived": False,
        }

    def upsert_contacts(self, request: Request, _: re.Match[str]) -> Reply:
        inputs = (request.body or {}).get("inputs")
        need(isinstance(inputs, list) and 1 <= len(inputs) <= 100, "inputs: 1 to 100 items")
        results = []
        for item in inputs:
            need(item.get("idProperty") == "email", "idProperty must be email here")
            email = item.get("id")
            need(isinstance(email, str) and bool(EMAIL.fullmatch(email)), "id: not an email")
            props = self._properties(item.get("properties"))
            need(props.get("email", email) == email, "properties.email differs from id")
            found = next(
                (
                    c
                    for c in self.contacts.values()
                    if c["properties"]["email"].lower() == email.lower()
                ),
                None,
            )
            if found is None:
                found = self._record(str(self.new_id()), {"email": email})
                self.contacts[found["id"]] = found
                self.created("contact")
                new = True
            else:
                new = False
            found["properties"].update(props)
            results.append({**found, "new": new})
        return Reply(
            200,
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": "2024-01-01T00:00:00Z",
                "completedAt": "2024-01-01T00:00:01Z",
            },
        )

    def list_contacts(self, request: Request, _: re.Match[str]) -> Reply:
        limit = int(request.query.get("limit", "10"))
        need(1 <= limit <= 100, "limit: 1 to 100")
        return Reply(200, {"results": list(self.contacts.values())[:limit]})

    def create_note(self, request: Request, _: re.Match[str]) -> Reply:
        body = request.body or {}
        props = self._properties(body.get("properties"))
        need("hs_timestamp" in props, "hs_timestamp is required", "hs_timestamp")
        need(props["hs_timestamp"].isdigit(), "hs_timestamp: milliseconds since the epoch")
        associations = body.get("associations") or []
        for association in associations:
            target = str(association.get("to", {}).get("id"))
            need(target in self.contacts, f"association to unknown contact {target}")
            need(
                association.get("types")
                == [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
                "note to contact association must be HUBSPOT_DEFINED 202",
            )
        note = self._record(str(self.new_id()), props)
        note["contacts"] = [str(a["to"]["id"]) for a in associations]
        self.notes[note["id"]] = note
        self.created("note")
        return Reply(201, {k: v for k, v in note.items() if k != "contacts"})

    def get_note(self, request: Request, found: re.Match[str]) -> Reply:
        note = self.notes.get(found.group(1))
        if note is None:
            return Reply(404, self.error_body(404, "resource not found", None))
        return Reply(200, {k: v for k, v in note.items() if k != "contacts"})

    def update_note(self, request: Request, found: re.Match[str]) -> Reply:
        note = self.notes.get(found.group(1))
        if note is None:
            return Reply(404, self.error_body(404, "resource not found", None))
        note["properties"].update(self._properties((request.body or {}).get("properties")))
        return Reply(200, {k: v for k, v in note.items() if k != "contacts"})

    def search_notes(self, request: Request, _: re.Match[str]) -> Reply:
        groups = (request.body or {}).get("filterGroups")
        need(isinstance(groups, list) and len(groups) <= 5, "filterGroups: up to 5")
        hits = []
        for note in self.notes.values():
            for group in groups:
                ok = True
                for flt in group.get("filters") or []:
                    need(flt.get("operator") in ("EQ", "CONTAINS_TOKEN"), "unsupported operator")
                    value = note["properties"].get(flt.get("propertyName"), "")
                    if flt["operator"] == "EQ":
                        ok = ok and value == flt.get("value")
                    else:  # whole tokens: split on anything but word characters and '-'
                        ok = ok and flt.get("value") in re.split(r"[^\w-]+", value)
                if ok:
                    hits.append({k: v for k, v in note.items() if k != "contacts"})
                    break
        return Reply(200, {"total": len(hits), "results": hits})


class PipedriveApi(FakeApi):
    """API v1 with ``api_token``: persons search/create, leads list/get/create, notes."""

    system = "pipedrive"
    routes = (
        ("GET", r"/v1/persons/search", "search_persons"),
        ("GET", r"/v1/users/me", "me"),
        ("POST", r"/v1/persons", "create_person"),
        ("GET", r"/v1/leads", "list_leads"),
        ("GET", r"/v1/leads/([0-9a-f-]+)", "get_lead"),
        ("POST", r"/v1/leads", "create_lead"),
        ("GET", r"/v1/notes", "list_notes"),
        ("POST", r"/v1/notes", "create_note"),
    )
    MAX_TITLE = 255

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.persons: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}

    def authorized(self, request: Request) -> bool:
        return request.query.get("api_token") == self.token

    def error_body(self, status: int, message: str, field_name: str | None) -> Any:
        return {
            "success": False,
            "error": message,
            "errorCode": status,
            "error_info": "Please check developers.pipedrive.com for more information"
            " about Pipedrive API.",
        }

    def unauthorized(self) -> Reply:
        return Reply(401, self.error_body(401, "unauthorized access", None))

    def rate_limited(self, seconds: int) -> Reply:
        return Reply(
            429,
            self.error_body(429, "Request over limit", None),
            {
                "x-ratelimit-limit": "80",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(seconds),
            },
        )

    def common_headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": "80", "x-ratelimit-remaining": "79"}

    def me(self, request: Request, _: re.Match[str]) -> Reply:
        return Reply(
            200, {"success": True, "data": {"id": 7, "name": "Sales Bot", "email": "bot@shop.test"}}
        )

    def search_persons(self, request: Request, _: re.Match[str]) -> Reply:
        term = request.query.get("term", "")
        need(len(term) >= 2 or request.query.get("exact_match") == "true", "term too short")
        need(request.query.get("fields") == "email", "expected fields=email")
        items = [
            {
                "result_score": 1.0,
                "item": {
                    "id": p["id"],
                    "type": "person",
                    "name": p["name"],
                    "emails": [e["value"] for e in p["email"]],
                },
            }
            for p in self.persons.values()
            if any(e["value"].lower() == term.lower() for e in p["email"])
        ]
        return Reply(
            200,
            {
                "success": True,
                "data": {"items": items},
                "additional_data": {
                    "pagination": {"start": 0, "limit": 100, "more_items_in_collection": False}
                },
            },
        )

    def create_person(self, request: Request, _: re.Match[str]) -> Reply:
        body = request.body or {}
        name = body.get("name")
        need(isinstance(name, str) and bool(name.strip()), "name is required", "name")
        need(len(name) <= 255, "name is longer than 255")
        emails = body.get("email") or []
        need(isinstance(emails, list), "email must be a list of {value, primary, label}")
        for email in emails:
            need(bool(EMAIL.fullmatch(str(email.get("value")))), "email value invalid")
        if "owner_id" in body:
            need(isinstance(body["owner_id"], int), "owner_id must be an integer")
        person = {
            "id": self.new_id(),
            "name": name,
            "email": emails,
            "phone": body.get("phone") or [],
            "owner_id": body.get("owner_id"),
        }
        self.persons[person["id"]] = person
        self.created("person")
        return Reply(201, {"success": True, "data": person})

    def list_leads(self, request: Request, _: re.Match[str]) -> Reply:
        person = request.query.get("person_id")
        data = [
            lead
            for lead in self.leads.values()
            if person is None or str(lead["person_id"]) == person
        ]
        return Reply(
            200,
            {
                "success": True,
                "data": data,
                "additional_data": {"pagination": {"more_items_in_collection": False}},
            },
        )

    def get_lead(self, request: Request, found: re.Match[str]) -> Reply:
        lead = self.leads.get(found.group(1))
        if lead is None:
            return Reply(404, self.error_body(404, "Lead not found", None))
        return Reply(200, {"success": True, "data": lead})

    def create_lead(self, request: Request, _: re.Match[str]) -> Reply:
        body = request.body or {}
        title = body.get("title")
        need(isinstance(title, str) and bool(title.strip()), "title is required", "title")
        need(len(title) <= self.MAX_TITLE, f"title is longer than {self.MAX_TITLE}")
        need("\n" not in title and "\r" not in title, "title is one line")
        person = body.get("person_id")
        need(person in self.persons, "person_id: no such person")
        lead = {
            "id": str(uuid.uuid4()),
            "title": title,
            "person_id": person,
            "owner_id": body.get("owner_id"),
            "organization_id": None,
        }
        self.leads[lead["id"]] = lead
        self.created("lead")
        return Reply(201, {"success": True, "data": lead})

    def list_notes(self, request: Request, _: re.Match[str]) -> Reply:
        lead = request.query.get("lead_id")
        need(lead is not None or "person_id" in request.query, "filter by lead_id or person_id")
        data = [n for n in self.notes.values() if lead is None or n["lead_id"] == lead]
        return Reply(200, {"success": True, "data": data})

    def create_note(self, request: Request, _: re.Match[str]) -> Reply:
        body = request.body or {}
        content = body.get("content")
        need(isinstance(content, str) and bool(content), "content is required", "content")
        need(len(content) <= 100_000, "content is longer than 100000")
        need(body.get("lead_id") in self.leads, "lead_id: no such lead")
        note = {
            "id": self.new_id(),
            "content": content,
            "lead_id": body["lead_id"],
            "person_id": body.get("person_id"),
        }
        self.notes[note["id"]] = note
        self.created("note")
        return Reply(201, {"success": True, "data": note})


FRESHDESK_PRIORITIES = (1, 2, 3, 4)


class FreshdeskApi(FakeApi):
    """API v2, basic auth with the API key: tickets create/view (with conversations),
    search by tag, notes; X-RateLimit-* on every answer, Retry-After on 429."""

    system = "freshdesk"
    routes = (
        ("POST", r"/api/v2/tickets", "create_ticket"),
        ("GET", r"/api/v2/agents/me", "me"),
        ("GET", r"/api/v2/search/tickets", "search_tickets"),
        ("GET", r"/api/v2/tickets/(\d+)", "get_ticket"),
        ("POST", r"/api/v2/tickets/(\d+)/notes", "create_note"),
        ("GET", r"/api/v2/tickets/(\d+)/conversations", "list_conversations"),
    )

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.tickets: dict[int, dict[str, Any]] = {}

    def authorized(self, request: Request) -> bool:
        return _basic(request) == f"{self.api_key}:X"

    def error_body(self, status: int, message: str, field_name: str | None) -> Any:
        if status == 400:
            return {
                "description": "Validation failed",
                "errors": [
                    {"field": field_name or "body", "message": message, "code": "invalid_value"}
                ],
            }
        return {"code": "invalid_request" if status != 404 else "not_found", "message": message}

    def unauthorized(self) -> Reply:
        return Reply(
            401,
            {
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            },
        )

    def rate_limited(self, seconds: int) -> Reply:
        return Reply(
            429,
            {"code": "rate_limit", "message": "Too many requests"},
            {
                "Retry-After": str(seconds),
                "X-RateLimit-Total": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Used-CurrentRequest": "1",
            },
        )

    def common_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Total": "100",
            "X-RateLimit-Remaining": "99",
            "X-RateLimit-Used-CurrentRequest": "1",
        }

    def me(self, request: Request, _: re.Match[str]) -> Reply:
        return Reply(
            200,
            {
                "id": 42,
                "available": True,
                "contact": {"name": "Support Bot", "email": "bot@shop.test"},
            },
        )

    def create_ticket(self, request: Request, _: re.Match[str]) -> Reply:
        body = request.body or {}
        email = body.get("email")
        need(
            isinstance(email, str) and bool(EMAIL.fullmatch(email)),
            "It should be in the 'valid email address' format",
            "email",
        )
        subject = body.get("subject")
        need(
            isinstance(subject, str) and 1 <= len(subject) <= 255,
            "It should be a/an String of at most 255 characters",
            "subject",
        )
        need(
            isinstance(body.get("description"), str) and bool(body["description"]),
            "It should be a/an String",
            "description",
        )
        need(
            body.get("status") in (2, 3, 4, 5),
            "It should be one of these values: 2,3,4,5",
            "status",
        )
        need(
            body.get("priority") in FRESHDESK_PRIORITIES,
            "It should be one of these values: 1,2,3,4",
            "priority",
        )
        tags = body.get("tags") or []
        need(
            isinstance(tags, list) and all(isinstance(t, str) and 0 < len(t) <= 32 for t in tags),
            "Each tag: a String of at most 32 characters",
            "tags",
        )
        need(
            isinstance(body.get("name", ""), str) and len(body.get("name", "")) <= 255,
            "It should be a/an String of at most 255 characters",
            "name",
        )
        ticket = {
            "id": self.new_id(),
            "subject": subject,
            "description": body["description"],
            "status": body["status"],
            "priority": body["priority"],
            "source": body.get("source"),
            "tags": tags,
            "email": email,
            "name": body.get("name"),
            "conversations": [],
        }
        self.tickets[ticket["id"]] = ticket
        self.created("ticket")
        return Reply(201, {k: v for k, v in ticket.items() if k != "conversations"})

    def search_tickets(self, request: Request, _: re.Match[str]) -> Reply:
        query = request.query.get("query", "")
        found = re.fullmatch(r"\"tag:'([^']+)'\"", query)
        need(found is not None, "query must be \"tag:'...'\" in double quotes", "query")
        assert found is not None
        results = [
            {k: v for k, v in t.items() if k != "conversations"}
            for t in self.tickets.values()
            if found.group(1) in t["tags"]
        ]
        return Reply(200, {"results": results, "total": len(results)})

    def get_ticket(self, request: Request, found: re.Match[str]) -> Reply:
        ticket = self.tickets.get(int(found.group(1)))
        if ticket is None:
            return Reply(404, None)  # Freshdesk answers a missing ticket with an empty 404
        if request.query.get("include") == "conversations":
            return Reply(200, ticket)
        return Reply(200, {k: v for k, v in ticket.items() if k != "conversations"})

    def list_conversations(self, request: Request, found: re.Match[str]) -> Reply:
        ticket = self.tickets.get(int(found.group(1)))
        if ticket is None:
            return Reply(404, None)
        page = int(request.query.get("page", "1"))
        per_page = int(request.query.get("per_page", "30"))
        need(page >= 1 and 1 <= per_page <= 100, "per_page: 1 to 100", "per_page")
        start = (page - 1) * per_page
        return Reply(200, ticket["conversations"][start : start + per_page])

    def create_note(self, request: Request, found: re.Match[str]) -> Reply:
        ticket = self.tickets.get(int(found.group(1)))
        if ticket is None:
            return Reply(404, None)
        body = request.body or {}
        need(
            isinstance(body.get("body"), str) and bool(body["body"]),
            "It should be a/an String",
            "body",
        )
        need(isinstance(body.get("private", True), bool), "private: a Boolean", "private")
        note = {
            "id": self.new_id(),
            "body": body["body"],
            "private": body.get("private", True),
            "ticket_id": ticket["id"],
        }
        ticket["conversations"].append(note)
        self.created("note")
        return Reply(201, note)


class ZendeskApi(FakeApi):
    """Support API v2 with API token basic auth (``{email}/token:{token}``): tickets create,
    show, list by external_id, update with a comment, list comments."""

    system = "zendesk"
    routes = (
        ("POST", r"/api/v2/tickets\.json", "create_ticket"),
        ("GET", r"/api/v2/users/me\.json", "me"),
        ("GET", r"/api/v2/tickets\.json", "list_tickets"),
        ("GET", r"/api/v2/tickets/(\d+)\.json", "show_ticket"),
        ("PUT", r"/api/v2/tickets/(\d+)\.json", "update_ticket"),
        ("GET", r"/api/v2/tickets/(\d+)/comments\.json", "list_comments"),
    )
    MAX_COMMENT = 65_535

    def __init__(self, email: str, token: str) -> None:
        super().__init__()
        self.email, self.token = email, token
        self.tickets: dict[int, dict[str, Any]] = {}

    def authorized(self, request: Request) -> bool:
        return _basic(request) == f"{self.email}/token:{self.token}"

    def error_body(self, status: int, message: str, field_name: str | None) -> Any:
        if status == 404:
            return {"error": "RecordNotFound", "description": "Not found"}
        return {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field_name or "base": [{"description": message}]},
        }

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": "Couldn't authenticate you"})

    def rate_limited(self, seconds: int) -> Reply:
        return Reply(
            429,
            {
                "error": "APIRateLimitExceeded",
                "description": "Number of allowed API requests per minute exceeded",
            },
            {"Retry-After": str(seconds), "X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0"},
        )

    def common_headers(self) -> dict[str, str]:
        return {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699"}

    def _comment(self, comment: Any) -> dict[str, Any]:
        need(isinstance(comment, dict), "comment must be an object", "comment")
        text = comment.get("html_body") or comment.get("body")
        need(isinstance(text, str) and bool(text), "comment needs body or html_body", "comment")
        need(len(text) <= self.MAX_COMMENT, "comment is longer than 65535", "comment")
        return {
            "id": self.new_id(),
            "type": "Comment",
            "html_body": text,
            "public": comment.get("public", True),
        }

    def _public(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ticket.items() if k != "comments"}

    def create_ticket(self, request: Request, _: re.Match[str]) -> Reply:
        ticket = (request.body or {}).get("ticket")
        need(isinstance(ticket, dict), 'body must be {"ticket": {...}}')
        subject = ticket.get("subject")
        need(isinstance(subject, str) and len(subject) <= 255, "subject: at most 255", "subject")
        need("\n" not in subject, "subject is one line", "subject")
        requester = ticket.get("requester") or {}
        need(
            bool(EMAIL.fullmatch(str(requester.get("email")))),
            "requester email invalid",
            "requester",
        )
        need(
            ticket.get("priority") in ("low", "normal", "high", "urgent"),
            "priority invalid",
            "priority",
        )
        tags = ticket.get("tags") or []
        need(all(isinstance(t, str) and " " not in t for t in tags), "tags: no spaces", "tags")
        external = ticket.get("external_id")
        need(
            external is None or (isinstance(external, str) and len(external) <= 255),
            "external_id: a string",
            "external_id",
        )
        followup = ticket.get("via_followup_source_id")
        if followup is not None:
            source = self.tickets.get(followup) if isinstance(followup, int) else None
            need(source is not None and source["status"] == "closed",
                 "via_followup_source_id: a follow-up needs a closed ticket",
                 "via_followup_source_id")  # fmt: skip
        comment = self._comment(ticket.get("comment"))
        record = {
            "id": self.new_id(),
            "subject": subject,
            "priority": ticket["priority"],
            "tags": tags,
            "external_id": external,
            "requester": requester,
            "status": "new",
            "via_followup_source_id": followup,
            "comments": [comment],
        }
        self.tickets[record["id"]] = record
        self.created("ticket")
        return Reply(201, {"ticket": self._public(record)})

    def me(self, request: Request, _: re.Match[str]) -> Reply:
        return Reply(
            200, {"user": {"id": 9, "name": "Agent", "email": self.email, "role": "agent"}}
        )

    def list_tickets(self, request: Request, _: re.Match[str]) -> Reply:
        external = request.query.get("external_id")
        found = [
            self._public(t)
            for t in self.tickets.values()
            if external is None or t["external_id"] == external
        ]
        return Reply(
            200, {"tickets": found, "count": len(found), "next_page": None, "previous_page": None}
        )

    def show_ticket(self, request: Request, found: re.Match[str]) -> Reply:
        ticket = self.tickets.get(int(found.group(1)))
        if ticket is None:
            return Reply(404, self.error_body(404, "Not found", None))
        return Reply(200, {"ticket": self._public(ticket)})

    def update_ticket(self, request: Request, found: re.Match[str]) -> Reply:
        ticket = self.tickets.get(int(found.group(1)))
        if ticket is None:
            return Reply(404, self.error_body(404, "Not found", None))
        update = (request.body or {}).get("ticket")
        need(isinstance(update, dict), 'body must be {"ticket": {...}}')
        if ticket["status"] == "closed":  # what Zendesk answers; the relay must not ask
            raise Invalid("Status: closed prevents ticket update", 422, "status")
        if "comment" in update:
            ticket["comments"].append(self._comment(update["comment"]))
            self.created("comment")
        return Reply(200, {"ticket": self._public(ticket), "audit": {"events": []}})

    def list_comments(self, request: Request, found: re.Match[str]) -> Reply:
        ticket = self.tickets.get(int(found.group(1)))
        if ticket is None:
            return Reply(404, self.error_body(404, "Not found", None))
        return Reply(200, {"comments": ticket["comments"], "count": len(ticket["comments"])})


__all__ = ["FreshdeskApi", "HubSpotApi", "Invalid", "PipedriveApi", "ZendeskApi"]
