"""Write operations of the payments app. Each module owns one sub-domain."""
