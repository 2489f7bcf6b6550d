from reporting import admin_audit  # noqa: F401
