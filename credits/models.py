"""Models of the credits app (filled by its own issue)."""
