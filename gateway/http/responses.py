"""POST /v1/responses and the stored-response routes: decode, plan, run, write; a stored
response is only ever found by the API key that created it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from aiohttp import web

from gateway import tracing
from gateway.errors import InvalidRequest, NotFound, validation_error
from gateway.http.body import decode_body, json_response
from gateway.http.middleware import MODEL_NAME, REQUEST_ID
from gateway.http.state import conversation_key, state_of
from gateway.http.streaming import generate_choices, serve_stream, stream_choices
from gateway.openai.responses import (
    ResponseEvents,
    ResponsePlan,
    plan_response,
    response_object,
    stored_items,
)
from gateway.response_store import ResponseStore, StoredResponse, StoreUnavailable
from gateway.response_store.base import owner_of
from schemas.responses_api import DeletedResponse, InputItemList, Response, ResponseRequest

log = logging.getLogger(__name__)
_DECODER = msgspec.json.Decoder(ResponseRequest)
_MAX_ID = 128  # longer than any id this gateway makes


class ListQuery(msgspec.Struct):
    limit: int = msgspec.field(default=20)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None


def _owner(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return owner_of(token.strip() if scheme.lower() == "bearer" else None)


def _store(request: web.Request) -> ResponseStore | None:
    return state_of(request).responses


async def _find(request: web.Request, response_id: str, param: str | None = None) -> StoredResponse:
    store = _store(request)
    record = None
    if store is not None and len(response_id) <= _MAX_ID:
        record = await store.get(response_id, _owner(request))
    if record is None:
        message = _not_stored(response_id)
        if param is not None:  # a field of a request, not a path: 400, as OpenAI answers it
            raise InvalidRequest(message, param=param, code="previous_response_not_found")
        raise NotFound(message, code="response_not_found")
    return record


def _not_stored(response_id: str) -> str:
    return f"No response with id '{response_id[:_MAX_ID]}' is stored for this API key."


async def create_response(request: web.Request) -> web.StreamResponse:
    body = await decode_body(request, _DECODER)
    previous = None
    if body.previous_response_id is not None:
        previous = await _find(request, body.previous_response_id, "previous_response_id")
    with tracing.child_span("plan"):
        plan = await plan_response(body, state_of(request), request[REQUEST_ID], previous, conversation_key(request))
    request[MODEL_NAME] = plan.chat.model.name
    chat = plan.chat
    keep = _keeper(request, plan) if plan.store else None
    if body.stream:
        deltas = stream_choices(request, chat.choices, chat.model, chat.tokenizer, chat.stages)
        events = ResponseEvents(plan, keep)
        return await serve_stream(
            request, chat.choices, deltas, events, tokenizer=chat.tokenizer, structured=chat.structured
        )
    usage = await generate_choices(request, chat.choices, chat.model, chat.tokenizer, chat.structured, chat.stages)
    response = response_object(plan, usage)
    if keep is not None:
        await keep(response)
    return json_response(response)


def _keeper(request: web.Request, plan: ResponsePlan) -> Callable[[Response], Awaitable[None]]:
    store = _store(request)
    owner = _owner(request)

    async def keep(response: Response) -> None:
        """Store the response; if the store fails, the answer still goes out, marked unstored."""
        assert store is not None
        try:
            await store.put(plan.record(response, owner))
        except StoreUnavailable:
            log.warning("response %s could not be stored: the response store is unavailable", plan.id)
            response.store = False

    return keep


async def retrieve_response(request: web.Request) -> web.Response:
    record = await _find(request, request.match_info["response_id"])
    return web.Response(body=record.response, content_type="application/json")  # stored as it was sent


async def delete_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    store = _store(request)
    if store is None or len(response_id) > _MAX_ID or not await store.delete(response_id, _owner(request)):
        raise NotFound(_not_stored(response_id), code="response_not_found")
    return json_response(DeletedResponse(response_id))


async def list_input_items(request: web.Request) -> web.Response:
    try:
        query = msgspec.convert(dict(request.query), ListQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    if not 1 <= query.limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100.", param="limit")
    items = await stored_items(await _find(request, request.match_info["response_id"]))
    if query.order == "desc":
        items.reverse()
    if query.after is not None:
        ids = [item.id for item in items]
        if query.after not in ids:
            raise InvalidRequest(f"No input item '{query.after[:_MAX_ID]}' in this response.", param="after")
        items = items[ids.index(query.after) + 1 :]
    page = items[: query.limit]
    return json_response(
        InputItemList(
            page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(items) > len(page),
        )
    )
