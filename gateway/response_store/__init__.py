"""Where stored responses live (for GET /v1/responses/{id} and previous_response_id): an
embedded SQLite file by default, Redis for several gateway replicas."""

from gateway.response_store.base import ResponseStore, StoredResponse, StoreUnavailable, open_store

__all__ = ["ResponseStore", "StoreUnavailable", "StoredResponse", "open_store"]
