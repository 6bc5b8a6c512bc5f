from django.db import models


class ComplianceJob(models.Model):
    """A compliance task run in the background for a person in the admin: an export (the file
    is kept under CHRONOSX_EXPORT_DIR and offered for download when done), or a verification
    of the audit chain (its result and head hash kept on the row). A worker claims it, stores
    its progress as it goes, and the sweeper takes back a job whose worker stopped reporting
    (compliance.services.jobs)."""

    class Task(models.TextChoices):
        EXPORT = "export"
        VERIFY_CHAIN = "verify_chain"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    task = models.CharField(max_length=16, choices=Task.choices)
    # export: {"kind", "fmt", "start", "end", "strategy"}; verify_chain: {}
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=150)  # the actor, e.g. "admin:cora"
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    # Claims so far: each claim counts one, and a worker writes only while the count is its own,
    # so a worker taken for dead that wakes up again cannot overwrite its successor's work.
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with every progress update: a running job whose worker stopped writing is stale.
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    # export: the file's name inside CHRONOSX_EXPORT_DIR, its SHA-256 and rows (or pages);
    # verify_chain: the chain's status (ok, summary, head_seq, head_hash, …).
    file_name = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "progress_at"], name="compliance_job_status")]

    def __str__(self):
        return f"{self.task} #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return min(100, 100 * self.done // self.total) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
