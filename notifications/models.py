"""Models of the notifications app (filled by its own issue)."""
