from django.contrib import admin, messages

from payments.models import ApiKey, ClientApp, Customer
from payments.services.clients import api_key_issue, api_key_revoke


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "label", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued with the "Issue a new API key" action, which shows the key once


@admin.register(ClientApp)
class ClientAppAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "is_active", "webhook_url", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "masked_webhook_secret", "created_at", "updated_at"]
    fields = ["id", "name", "is_active", "webhook_url", "masked_webhook_secret", "created_at", "updated_at"]
    inlines = [ApiKeyInline]
    actions = ["issue_api_key"]

    @admin.display(description="Webhook signing secret")
    def masked_webhook_secret(self, obj):
        return f"{obj.webhook_secret[:10]}…" if obj and obj.webhook_secret else "—"

    @admin.action(description="Issue a new API key (shown once)")
    def issue_api_key(self, request, queryset):
        for client_app in queryset:
            issued = api_key_issue(client_app=client_app, label=f"issued by {request.user.get_username()}")
            self.message_user(
                request,
                f"New API key for {client_app.name}: {issued.raw_key} — copy it now, it will not be shown again.",
                level=messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "client_app", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["client_app"]
    search_fields = ["prefix", "label", "client_app__name"]
    readonly_fields = ["id", "client_app", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["id", "client_app", "label", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["id", "client_app", "external_id", "email", "name", "created_at"]
    list_filter = ["client_app"]
    search_fields = ["id", "external_id", "email", "name"]
    readonly_fields = ["id", "created_at", "updated_at"]
