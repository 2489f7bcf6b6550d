"""The reporting dashboard on the admin's landing page (/admin/).

The admin index view is wrapped once, when the admin modules load (reporting/admin.py imports
this module), to add `reporting_dashboard` to its context: the `Dashboard` of
`reporting.dashboard.build_dashboard`, or None for a user without `reporting.view_dashboard`, who
gets Django's normal index. templates/admin/index.html draws it above the app list, below the
open-alerts panel. A wrapper rather than a custom AdminSite: every app already registers on
`admin.site`, and nothing in settings or URLs changes.
"""

from functools import wraps

from django.contrib import admin

from reporting.dashboard import build_dashboard


def _with_dashboard(index):
    @wraps(index)
    def dashboard_index(request, extra_context=None):
        context = {"reporting_dashboard": build_dashboard(request), **(extra_context or {})}
        return index(request, extra_context=context)

    dashboard_index.reporting_dashboard = True
    return dashboard_index


if not getattr(admin.site.index, "reporting_dashboard", False):
    admin.site.index = _with_dashboard(admin.site.index)
