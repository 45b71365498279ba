"""HTTP routes under /v1, grouped by resource."""
