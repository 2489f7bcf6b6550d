"""Staff roles: the Django groups `finance`, `support` and `operations` and their permissions.

This table is the single source of truth. The data migration `reporting/0002_staff_groups` creates
the groups on a fresh database, and `sync_staff_groups` runs again after every `migrate` (the
post_migrate handler in reporting/apps.py), so an existing database follows any change made here
and a flushed test database gets its groups back. Each group's permissions are set to exactly this
list: change roles here, not in the admin's group page (a manual edit is undone at the next migrate).

Superusers are no group: they have every permission.

Decisions worth knowing:
- Client apps and API keys (webhook signing secrets, key prefixes) are for superusers only; no role
  sees them, so finance never sees a client app's secrets.
- Alerts are shown to every active staff user, who may acknowledge them (notifications/admin_alerts.py);
  resolving one by hand needs `notifications.change_alert` (operations).
- Admin actions map to one permission each (their `allowed_permissions` / `has_<name>_permission`):
  refund a payment `payments.refund_payment`, refund a stray charge `payments.refund_straycharge`,
  re-send an invoice or submit it again `billing.resend_invoice`, redeliver an outgoing event
  `notifications.redeliver_outgoingevent`, retry a gateway webhook `payments.retry_webhookevent`,
  run a reconciliation again `payments.rerun_reconciliationrun`, mark reconciliation issues resolved
  `payments.change_reconciliationissue`, adjust credits `credits.change_creditaccount` (superusers).
"""

import logging

logger = logging.getLogger(__name__)

FINANCE = "finance"
SUPPORT = "support"
OPERATIONS = "operations"

_INVOICES_READ = {"billing.view_invoice", "billing.view_invoiceline", "billing.view_billingprofile"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    # Dashboard, period reports, invoices: read. No payments, no client apps.
    FINANCE: frozenset(
        {
            "reporting.view_dashboard",
            "reporting.view_dailyrollup",
            "reporting.view_report",
            "reporting.add_report",
            "reporting.view_auditentry",
            *_INVOICES_READ,
        }
    ),
    # Payments and customers: read; refunds and re-sending (invoices, events to client apps). No reports.
    SUPPORT: frozenset(
        {
            "payments.view_payment",
            "payments.view_paymentattempt",
            "payments.view_refund",
            "payments.view_customer",
            "payments.view_paymentmethod",
            "payments.view_straycharge",
            "payments.refund_payment",
            "payments.refund_straycharge",
            "credits.view_creditplan",
            "credits.view_creditaccount",
            "credits.view_creditlot",
            "credits.view_creditledgerentry",
            "credits.view_creditpurchase",
            "credits.view_creditconsumption",
            "credits.view_creditautorenewal",
            *_INVOICES_READ,
            "billing.resend_invoice",
            "notifications.view_outgoingevent",
            "notifications.view_deliveryattempt",
            "notifications.redeliver_outgoingevent",
            "notifications.view_sentemail",
            "notifications.view_suppressedaddress",
            "notifications.view_customerpreferences",
        }
    ),
    # Gateways (routing rules and breakers, the sandbox simulators), reconciliation, alerts, webhooks
    # in and out, stray charges. Payments read-only, to follow an alert to the rows at fault.
    OPERATIONS: frozenset(
        {
            "reporting.view_dashboard",
            "reporting.view_auditentry",
            "payments.view_routingrule",
            "payments.add_routingrule",
            "payments.change_routingrule",
            "payments.delete_routingrule",
            "payments.view_reconciliationrun",
            "payments.rerun_reconciliationrun",
            "payments.view_reconciliationrecord",
            "payments.view_reconciliationissue",
            "payments.change_reconciliationissue",
            "payments.view_webhookevent",
            "payments.retry_webhookevent",
            "payments.view_straycharge",
            "payments.refund_straycharge",
            "payments.view_payment",
            "payments.view_paymentattempt",
            "payments.view_refund",
            "notifications.view_alert",
            "notifications.change_alert",
            "notifications.view_outgoingevent",
            "notifications.view_deliveryattempt",
            "notifications.redeliver_outgoingevent",
            "simulator.view_gatewaycontrol",
            "simulator.view_simcharge",
            "simulator.view_simrefund",
            "simulator.view_simtoken",
            "simulator.view_simcustomer",
            "simulator.view_simcard",
            "simulator.view_simcheckout",
            "simulator.view_receivedevent",
        }
    ),
}

ROLES = tuple(ROLE_PERMISSIONS)


class UnknownPermission(LookupError):
    pass


def sync_staff_groups(apps=None, *, strict: bool = True, using: str = "default") -> dict[str, int]:
    """Create the role groups if missing and set each one's permissions to exactly the table's.

    `apps` is a migration's app registry (historical models) or None for the live models. With
    `strict`, a permission of the table that does not exist is an error (a typo, or a model gone);
    without it (inside the data migration, where a later migration may add the model) it is skipped
    and logged, and the post_migrate run at the end of `migrate` adds it. Idempotent. Returns the
    number of permissions per group."""
    if apps is None:
        from django.apps import apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")

    wanted = {name for names in ROLE_PERMISSIONS.values() for name in names}
    found = {}
    for app_label, codename, pk in (
        permission_model.objects.using(using)
        .filter(content_type__app_label__in={name.split(".", 1)[0] for name in wanted})
        .values_list("content_type__app_label", "codename", "pk")
    ):
        found[f"{app_label}.{codename}"] = pk
    missing = sorted(wanted - found.keys())
    if missing:
        if strict:
            raise UnknownPermission(f"Staff roles name permissions that do not exist: {', '.join(missing)}")
        logger.warning("staff roles: permissions missing (not created yet?)", extra={"missing": missing})

    counts = {}
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        pks = [found[name] for name in sorted(names) if name in found]
        group.permissions.set(pks)
        counts[role] = len(pks)
    return counts


def sync_after_migrate(sender, *, apps=None, using="default", **kwargs):
    """post_migrate handler: once per `migrate` (or flush), after the last app's permissions exist."""
    from django.apps import apps as global_apps

    last = [config for config in global_apps.get_app_configs() if config.models_module][-1]
    if sender.label == last.label:
        sync_staff_groups(apps, strict=False, using=using)
