"""event_intake: hazard events from JSON files and an authenticated HTTP endpoint.

schema (one event format), core (validation, exactly-once via ledger), watch (events
directory), http_api (FastAPI app), convert (event -> Alert), event_intake (the node).
"""
