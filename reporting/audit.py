"""The audit log of staff actions that move money or change configuration.

`record_staff_action` writes one `AuditEntry` inside the transaction of the change it records, so
either both are kept or neither is. The admin calls it where the staff user is known (save_model,
delete_model, actions); `model_changes` turns a saved admin form into the before/after dicts.

before/after are small JSON dicts of the fields that changed. Amounts stay integers in minor units.
Secrets never land here: any key that names a secret (webhook signing secrets, API keys, passwords,
tokens) is replaced by "(hidden)" whatever the caller passed; callers say "rotated" or give a key's
public prefix instead.
"""

import datetime
import decimal
import uuid

from django.db import models, transaction

from payments.models import ClientApp
from reporting.models import AuditEntry

HIDDEN = "(hidden)"
_SECRET_WORDS = ("secret", "password", "key_hash", "raw_key", "token", "api_key_value")


class NotInTransaction(RuntimeError):
    """The entry must commit or roll back with the change it records."""


def record_staff_action(
    *,
    user,
    action: str,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    client_app: ClientApp | str | None = None,
    summary: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    """Write the audit entry of one staff action. Call it inside the `transaction.atomic()` of the change.

    `obj` names the object acted on (its model label and pk), or pass `object_type`/`object_id`.
    `client_app` defaults to the object's own client app (or the object, if it is one)."""
    if not transaction.get_connection().in_atomic_block:
        raise NotInTransaction("record_staff_action must run inside the transaction of the change it records")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    if client_app is None and obj is not None:
        client_app = obj.pk if isinstance(obj, ClientApp) else getattr(obj, "client_app_id", None)
    client_app_id = client_app.pk if isinstance(client_app, ClientApp) else client_app
    return AuditEntry.objects.create(
        actor=user if getattr(user, "pk", None) else None,
        actor_username=(user.get_username() if user is not None else "system")[:150],
        action=action[:60],
        object_type=(object_type or "")[:60],
        object_id=str(object_id or "")[:60],
        client_app_id=client_app_id,
        summary=summary[:300],
        before=_clean(before),
        after=_clean(after),
    )


def model_changes(form, *, change: bool, fields=None) -> tuple[dict | None, dict | None]:
    """(before, after) of a saved admin model form: the changed fields' initial and cleaned values.

    An added object has no before and all its (listed) fields as after. `fields` limits what is
    recorded; by default every changed form field."""
    names = [name for name in form.changed_data if fields is None or name in fields]
    if not change:
        names = [name for name in form.cleaned_data if fields is None or name in fields]
        return None, {name: _plain(form.cleaned_data.get(name)) for name in names}
    before = {name: _plain(form.initial.get(name)) for name in names}
    after = {name: _plain(form.cleaned_data.get(name)) for name in names}
    return before, after


def model_values(obj: models.Model, fields) -> dict:
    """The named fields of `obj` as plain JSON values (a deleted object's last state, say)."""
    return {name: _plain(getattr(obj, name)) for name in fields}


def masked_key(prefix: str) -> str:
    """How an API key appears in the log: its public prefix only ("sk_test_ab…")."""
    return f"{prefix}…"


def _clean(values: dict | None) -> dict | None:
    if values is None:
        return None
    return {
        str(key): HIDDEN if any(word in str(key).lower() for word in _SECRET_WORDS) else _plain(value)
        for key, value in values.items()
    }


def _plain(value):
    """A JSON-ready copy of `value`; integers stay integers (amounts are minor units)."""
    if value is None or isinstance(value, bool | int | str | float):
        return value
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, dict):
        return _clean(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, models.QuerySet):
        return [str(pk) for pk in value.values_list("pk", flat=True)]
    return str(value)


class AuditedModelAdmin:
    """ModelAdmin mixin: every add, change and delete of the model (its `AUDITED_FIELDS`) lands in
    the audit log as `<AUDIT_NAME>.create|update|delete`, in the same transaction as the change.

    `after_audited_save(request, obj, change, after)` runs inside that transaction, after the save
    and before the entry is written, for work that belongs with it (and may add to `after`)."""

    AUDITED_FIELDS: list[str] = []
    AUDIT_NAME = ""
    AUDIT_SUMMARY = True  # the entry's summary is the object's str()

    def _audit_summary(self, obj) -> str:
        return str(obj) if self.AUDIT_SUMMARY else ""

    def after_audited_save(self, request, obj, change: bool, after: dict) -> None:
        pass

    def save_model(self, request, obj, form, change):
        before, after = model_changes(form, change=change, fields=self.AUDITED_FIELDS)
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self.after_audited_save(request, obj, change, after)
            if after:
                record_staff_action(
                    user=request.user,
                    action=f"{self.AUDIT_NAME}.{'update' if change else 'create'}",
                    obj=obj,
                    summary=self._audit_summary(obj),
                    before=before,
                    after=after,
                )

    def _audit_delete(self, request, obj) -> None:
        record_staff_action(
            user=request.user,
            action=f"{self.AUDIT_NAME}.delete",
            obj=obj,
            summary=self._audit_summary(obj),
            before=model_values(obj, self.AUDITED_FIELDS),
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit_delete(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self._audit_delete(request, obj)
            super().delete_queryset(request, queryset)
