"""Admin base classes for rows that record what happened (money, events, ledgers, audits).

Staff read them in the admin; they change only through services (admin actions call those).
"""

from django.contrib import admin


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RecordAdmin(admin.ModelAdmin):
    """Every field read-only; no adding or deleting here. Actions may still act through services.

    A record's own page is a view (no Save button): change permission holds only for the
    changelist, where the actions live."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ImmutableRecordAdmin(RecordAdmin):
    """Append-only rows: not even the change form's save button."""

    def has_change_permission(self, request, obj=None):
        return False
