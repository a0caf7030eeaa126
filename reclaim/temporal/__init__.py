"""Temporal plumbing shared by every feature: the connection (`connection`), the payload codec
(`codec`), the search attributes and case texts the Web UI shows, and the wrapper that turns
Temporal's failures into Reclaim's domain errors (`calls`).

Empty on purpose: workflows import `search_attributes` and `case_text` through the sandbox,
which must not pull the client or the runtime in with them."""
