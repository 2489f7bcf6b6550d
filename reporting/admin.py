from reporting import (
    admin_audit,  # noqa: F401
    admin_dashboard,  # noqa: F401
    admin_reports,  # noqa: F401
)
