from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.models import TokenProxy


class ActorKind(models.TextChoices):
    OPERATOR = "operator", _("operator")
    ENGINE = "engine", _("risk engine")
    JOB = "job", _("job")
    BORROWER = "borrower", _("borrower")
    SYSTEM = "system", _("system")


class AuditEvent(models.Model):
    """Append-only record of one state change: who or what, on which object, before and after, why.

    Written by every state change, three rows per account in a bulk unfreeze, so what it costs to write is kept low:
    - read by account (the case page: `audit_account_at`) and by time (a BRIN index: events are written in time
      order, so a block range summary finds a day's events, at a fraction of a B-tree's cost to keep);
    - `object_type`/`object_id` name the object; they are not indexed: every event also carries its account, and an
      account has at most a few hundred events;
    - `account` is not a database foreign key: the id is written in the statement that locks the line, lines are
      never deleted (`on_delete=PROTECT` still guards the ORM), and the per-row check was 11% of `lines_unfreeze`.
    """

    at = models.DateTimeField()
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    # No index on the operator: events are read by account and by time.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    actor_label = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=50)
    object_type = models.CharField(max_length=50)
    object_id = models.BigIntegerField()
    account = models.ForeignKey(
        "accounts.CreditLine",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # Where the request came from (riskops.core.http.client_address): an operator's, a borrower's or an upstream
    # system's address; none for the engine, jobs and beat.
    client_address = models.CharField(max_length=45, null=True, blank=True)
    # The hash chain (riskops.core.audit_chain, docs/AUDIT.md): filled once, in commit order, by the sealer; the
    # database refuses any other UPDATE, and every DELETE and TRUNCATE, outside the maintenance procedure.
    content_hash = models.BinaryField(null=True, editable=False)
    chain_seq = models.BigIntegerField(null=True, editable=False)
    prev_hash = models.BinaryField(null=True, editable=False)
    chain_hash = models.BinaryField(null=True, editable=False)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["account", "at"], name="audit_account_at"),
            BrinIndex(fields=["at"], name="audit_at_brin"),
            # What the sealer takes next, in id order: only the few events written since its last run.
            models.Index(fields=["id"], name="audit_unsealed", condition=Q(chain_seq__isnull=True)),
            # The audit page's operator filter, newest first. Operators' events only: the engine's and jobs' (most of
            # the table, and all of a bulk unfreeze's) have no user and cost this index nothing.
            models.Index(fields=["actor_user", "-id"], name="audit_operator", condition=Q(actor_user__isnull=False)),
        ]
        constraints = [models.UniqueConstraint(fields=["chain_seq"], name="audit_chain_seq")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_kind} {self.action} {self.object_type}#{self.object_id}"


class AuditCheckpoint(models.Model):
    """The chain's head at a moment, signed (HMAC-SHA256 with AUDIT_CHECKPOINT_KEY): rewriting the chain up to here
    needs the key as well as the database. Append-only like the events."""

    at = models.DateTimeField()
    chain_seq = models.BigIntegerField()
    chain_hash = models.BinaryField()
    signature = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("audit checkpoint")
        verbose_name_plural = _("audit checkpoints")

    def __str__(self) -> str:
        return f"checkpoint #{self.pk} at seq {self.chain_seq}"


class AuditVerification(models.Model):
    """One run of `verify_audit`: when, by whom, what it checked and the first event that did not match."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    by = models.CharField(max_length=150)
    ok = models.BooleanField()
    events_checked = models.BigIntegerField()
    checkpoints_checked = models.IntegerField()
    first_bad_event_id = models.BigIntegerField(null=True, blank=True)
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        verbose_name = _("audit verification")
        verbose_name_plural = _("audit verifications")

    def __str__(self) -> str:
        return f"verification #{self.pk} {'ok' if self.ok else 'FAILED'}"


class JobKind(models.TextChoices):
    REEVALUATE = "reevaluate", _("re-evaluate")
    REEVALUATE_UNFREEZE = "reevaluate_unfreeze", _("re-evaluate, then unfreeze where every freezing signal cleared")
    BULK_UNFREEZE = "bulk_unfreeze", _("bulk unfreeze")
    BULK_REMIND = "bulk_remind", _("bulk reminder")
    IMPORT = "import", _("import a file")
    SIMULATE = "simulate", _("simulate a draft of the rules")
    BACKTEST = "backtest", _("backtest a draft of the rules")


# What can be asked for on a selection of accounts (queue, case page, API); an import needs its file, a simulation
# its draft (a backtest too), and each is asked for on its own page.
SELECTION_KINDS = (JobKind.REEVALUATE, JobKind.REEVALUATE_UNFREEZE, JobKind.BULK_UNFREEZE, JobKind.BULK_REMIND)


def selection_kind_choices() -> list[tuple[str, str]]:
    """The jobs the queue, a case page and the API offer, with their labels in the active language."""
    return [(k.value, str(k.label)) for k in SELECTION_KINDS]


class JobSelection(models.TextChoices):
    FILTER = "filter", _("a queue filter")
    IDS = "ids", _("chosen accounts")
    ALL = "all", _("all active and frozen lines")
    FILE = "file", _("an uploaded file")


class JobStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", _("waiting for approval")
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


JOB_ACTIVE = [JobStatus.AWAITING_APPROVAL, JobStatus.QUEUED, JobStatus.RUNNING]


class Job(models.Model):
    """A job over many accounts: its selection is frozen into batches when it starts; counts follow the batches."""

    kind = models.CharField(max_length=24, choices=JobKind.choices)
    selection_kind = models.CharField(max_length=10, choices=JobSelection.choices)
    # The queue filter's fields, or {"line_ids": [...]}; kept as asked, for the record.
    selection = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_label = models.CharField(max_length=100)
    requested_at = models.DateTimeField()
    # How many frozen lines the selection held when asked: what decides whether a second reviewer must approve.
    may_unfreeze = models.PositiveIntegerField(default=0)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    batch_size = models.PositiveIntegerField()
    selected = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Why the job failed (a batch that kept failing after its retries).
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        constraints = [
            # Four eyes on jobs too: nobody approves their own.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=F("requested_by")),
                name="job_approver_is_not_requester",
            )
        ]
        indexes = [models.Index(fields=["-requested_at"], name="job_recent")]

    def __str__(self) -> str:
        return f"job #{self.pk} ({self.kind}, {self.status})"


class JobBatchStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    DONE = "done", _("done")
    CANCELLED = "cancelled", _("cancelled")


class JobBatch(models.Model):
    """One Celery task's worth of a job: a contiguous stretch of the frozen selection (1-5k line ids).

    The batch row is also the job's dispatch outbox: written with the job, sent to the broker after commit and
    again by `jobs_dispatch` until it is done, so neither a broker outage nor a lost worker loses it.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="batches")
    seq = models.PositiveIntegerField()
    line_ids = ArrayField(models.BigIntegerField())
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=JobBatchStatus.choices, default=JobBatchStatus.PENDING)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_count = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written when the batch is done: the accounts it changed. Its other accounts were unchanged, or failed (a
    # `JobItem` with the reason). One array in the batch's row instead of a row per changed account: a bulk
    # unfreeze changes every account, and a row each (with its two foreign-key checks) was 11% of a batch.
    changed_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)

    class Meta:
        verbose_name = _("job batch")
        verbose_name_plural = _("job batches")
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="one_batch_per_job_seq")]
        indexes = [models.Index(fields=["dispatched_at", "id"], name="jobbatch_pending", condition=Q(status="pending"))]

    def __str__(self) -> str:
        return f"batch {self.seq} of job #{self.job_id}"


class JobItemOutcome(models.TextChoices):
    CHANGED = "changed", _("changed")
    UNCHANGED = "unchanged", _("unchanged")
    FAILED = "failed", _("failed")


class JobItem(models.Model):
    """An account a job could not change, with the reason (`outcome` is failed). Written in the batch's
    transaction, with the batch's `changed_ids`; the batch's other accounts were left as they were
    (`riskops.jobs.selectors.job_outcomes`)."""

    # db_index=False: the unique (job, line) constraint below serves the job's lookups.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items", db_index=False)
    line = models.ForeignKey("accounts.CreditLine", on_delete=models.PROTECT, related_name="+", db_index=False)
    outcome = models.CharField(max_length=10, choices=JobItemOutcome.choices)
    # The reason in English, marked for translation, with its values: `text` is it in the reader's language.
    message = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("job item")
        verbose_name_plural = _("job items")
        constraints = [models.UniqueConstraint(fields=["job", "line"], name="one_item_per_job_line")]

    def __str__(self) -> str:
        return f"job #{self.job_id} line {self.line_id}: {self.outcome}"

    @property
    def text(self) -> str:
        """The reason in the active language (an exception's own text, not in the catalogue, stays as it is)."""
        template = gettext(self.message) if self.message else ""
        return template % self.params if self.params else template


class ApiToken(TokenProxy):
    """An integration's API token as the admin panel lists it (riskops.admin_operators): addressed by its user's id,
    named by its user and the first characters of its key, never by the whole key (Token's own name)."""

    class Meta:
        proxy = True
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.user} ({self.key[:4]}…)"


class DailyFigure(models.Model):
    """A closed day's count of one dashboard figure and key (accounts.figures, appeals.figures), kept by
    `riskops.dashboard.services.dashboard_refresh`; today's are counted live from the same SQL."""

    day = models.DateField()
    figure = models.CharField(max_length=20)
    key = models.CharField(max_length=40, blank=True)
    n = models.BigIntegerField()

    class Meta:
        verbose_name = _("daily figure")
        verbose_name_plural = _("daily figures")
        constraints = [models.UniqueConstraint(fields=["day", "figure", "key"], name="one_daily_figure")]
        permissions = [("view_operator_figures", "Can see the dashboard's decisions per operator")]

    def __str__(self) -> str:
        return f"{self.day} {self.figure} {self.key}: {self.n}"


class DailyFiguresDay(models.Model):
    """A day whose figures are in DailyFigure, counted in this time zone at that time: a closed day whole, or today
    up to `until` (its members in DayMember; what came after is counted live, against them)."""

    day = models.DateField(primary_key=True)
    time_zone = models.CharField(max_length=40)
    computed_at = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True)  # null: the whole day

    class Meta:
        verbose_name = _("day of daily figures")
        verbose_name_plural = _("days of daily figures")

    def __str__(self) -> str:
        return f"{self.day} ({self.time_zone})"


class DayMember(models.Model):
    """One of today's counted members (a case, an appeal, a line change) of a figure and key, up to the day's
    `DailyFiguresDay.until`: what today's live count is deduplicated against. Only today's are kept."""

    day = models.DateField()
    figure = models.CharField(max_length=20)
    key = models.CharField(max_length=40, blank=True)
    member = models.BigIntegerField()

    class Meta:
        verbose_name = _("counted member of today")
        verbose_name_plural = _("counted members of today")
        constraints = [models.UniqueConstraint(fields=["day", "figure", "key", "member"], name="one_day_member")]

    def __str__(self) -> str:
        return f"{self.day} {self.figure} {self.key}: {self.member}"
