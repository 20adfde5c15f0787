"""Schemathesis hooks for Scatter's CI: `POST /documents` takes NDJSON, sent as text."""
import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
