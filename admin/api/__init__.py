"""The JSON admin API under /api/v1/ (RFC 9457 errors, OpenAPI 3.1 document)."""
