"""Under CI=true, a test that would skip because a service is missing fails instead.

CI (`.ci/run` → `scripts/test`) always starts PostgreSQL, Redis and Chromium, so a missing
one there is a broken setup, not a reason to go green. Loaded for every run from pytest.ini
(`-p tests.ci_services`). Skip sites call `service_missing(reason)`; the report hook below
catches service skips that do not go through it (a `skipif` marker, a new `pytest.skip`).
"""

import os
import re

import pytest

# What a skip reason mentions when the thing it lacks is one of the services CI provides.
SERVICE_WORDS = re.compile(r"postgres|redis|chromium|browser|superuser|database_url", re.IGNORECASE)


def ci_enabled() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def ci_failure_message(reason: str) -> str:
    return f"{reason} [CI=true: a missing service fails the run instead of skipping]"


def service_missing(reason: str):
    """Skip the calling test for a missing service; under CI=true, fail it instead."""
    __tracebackhide__ = True  # report the caller's line, not this one
    if ci_enabled():
        pytest.fail(ci_failure_message(reason), pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and ci_enabled()) or hasattr(report, "wasxfail"):
        return
    if not isinstance(report.longrepr, tuple):
        return
    path, lineno, reason = report.longrepr
    reason = reason.removeprefix("Skipped: ")
    if SERVICE_WORDS.search(reason):
        report.outcome = "failed"
        report.longrepr = f"{path}:{lineno}: {ci_failure_message(reason)}"
