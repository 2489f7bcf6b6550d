"""Reconciliation: one run per (gateway, day), the gateway's records staged for SQL, and the issues found.

Amounts are integers in minor units (céntimos/cents), always beside a `currency` column.
"""

from django.db import models
from django.db.models import Q

from payments.models.payments import Payment


class ReconciliationRun(models.Model):
    """One comparison of a gateway's records for a day (in settings.TIME_ZONE) with ours."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STATUSES = [(s, s) for s in (RUNNING, FINISHED, FAILED)]

    gateway = models.CharField(max_length=20)
    day = models.DateField()
    status = models.CharField(max_length=10, choices=STATUSES, default=RUNNING)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    gateway_records = models.PositiveIntegerField(default=0, help_text="The gateway's records created that day.")
    our_records = models.PositiveIntegerField(default=0, help_text="Our payments at that gateway created that day.")
    matched = models.PositiveIntegerField(default=0, help_text="Gateway records that matched a payment of ours.")
    fixed = models.PositiveIntegerField(default=0, help_text="Payments brought up to the gateway's status.")
    issues = models.PositiveIntegerField(default=0, help_text="Differences that need a person (new and known).")
    new_issues = models.PositiveIntegerField(default=0, help_text="Of those, first found by this run.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # Two runs of one day at once would replace each other's staging rows.
            models.UniqueConstraint(
                fields=["gateway", "day"], condition=Q(status="running"), name="reconciliation_run_one_running"
            ),
        ]
        indexes = [models.Index(fields=["gateway", "day"], name="reconciliation_run_day_idx")]
        permissions = [("rerun_reconciliationrun", "Can run a reconciliation again")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.day} ({self.status})"


class ReconciliationRecord(models.Model):
    """Staging: one gateway record of a run, written in batches so the comparison runs in SQL.

    Deleted when its run finishes; a failed run's rows stay for inspection until the day is run again.
    `payment` is filled in by the matching step (by gateway id, else by the reference we sent).
    """

    MATCHED_BY_ID = "id"
    MATCHED_BY_REFERENCE = "reference"

    # Indexed by the (run, gateway_payment_id) constraint, which starts with it.
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, db_index=False, related_name="records")
    gateway_payment_id = models.CharField(max_length=120)
    reference = models.CharField(max_length=120, blank=True, help_text="Our payment id as the gateway echoes it.")
    status = models.CharField(max_length=20, help_text="The gateway's status in SmartPay's words (ChargeStatus).")
    gateway_status = models.CharField(max_length=40, blank=True)
    decline_code = models.CharField(max_length=60, blank=True)
    amount = models.BigIntegerField(help_text="Minor units of currency.")
    amount_refunded = models.BigIntegerField(default=0, help_text="Minor units of currency.")
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(null=True, blank=True, help_text="At the gateway.")
    # A lookup result in a transient table: no database constraint to check on 100,000 updates.
    payment = models.ForeignKey(
        Payment,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    matched_by = models.CharField(max_length=10, blank=True)

    class Meta:
        constraints = [
            # A listing that shifts between pages can repeat a record; it is staged once.
            models.UniqueConstraint(fields=["run", "gateway_payment_id"], name="reconciliation_record_once"),
        ]
        indexes = [
            models.Index(fields=["run", "payment"], name="reconciliation_record_pay_idx"),
            models.Index(fields=["run", "reference"], name="reconciliation_record_ref_idx"),
        ]

    def __str__(self) -> str:
        return self.gateway_payment_id


class ReconciliationIssue(models.Model):
    """A difference between a gateway and us that reconciliation could not fix safely.

    Open issues are unique per `dedupe_key` (gateway, kind and the gateway's id, or our payment id),
    so running a day again refreshes `last_seen_at` instead of adding a copy. Once resolved, the same
    difference found again opens a new issue.
    """

    MISSING_OURS = "missing_ours"
    MISSING_THEIRS = "missing_theirs"
    STATUS_MISMATCH = "status_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    KINDS = [
        (MISSING_OURS, "Missing on our side"),
        (MISSING_THEIRS, "Missing at the gateway"),
        (STATUS_MISMATCH, "Status differs"),
        (AMOUNT_MISMATCH, "Amount differs"),
    ]

    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="found_issues")
    gateway = models.CharField(max_length=20)
    day = models.DateField()
    kind = models.CharField(max_length=20, choices=KINDS)
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="reconciliation_issues"
    )
    gateway_payment_id = models.CharField(max_length=120, blank=True)
    our_status = models.CharField(max_length=20, blank=True)
    their_status = models.CharField(max_length=20, blank=True)
    our_amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units of currency.")
    their_amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units of currency.")
    our_amount_refunded = models.BigIntegerField(null=True, blank=True, help_text="Minor units of currency.")
    their_amount_refunded = models.BigIntegerField(null=True, blank=True, help_text="Minor units of currency.")
    currency = models.CharField(max_length=3, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    dedupe_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, help_text="Staff user, or the run that no longer saw it")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"], condition=Q(resolved_at__isnull=True), name="reconciliation_issue_open_once"
            ),
        ]
        indexes = [
            models.Index(fields=["gateway", "day", "resolved_at"], name="reconciliation_issue_day_idx"),
            models.Index(fields=["kind", "resolved_at"], name="reconciliation_issue_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.gateway}:{self.gateway_payment_id or self.payment_id}"

    @staticmethod
    def key_for(*, gateway: str, kind: str, gateway_payment_id: str = "", payment_id: str = "") -> str:
        """The dedupe key: the gateway's id when there is one (it names the record), else our payment id."""
        subject = f"id:{gateway_payment_id}" if gateway_payment_id else f"payment:{payment_id}"
        return f"{gateway}:{kind}:{subject}"[:200]
