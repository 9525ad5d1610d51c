"""`tam jobs cancel`, `tam run` on a step that already has a job, one name per step, 80 columns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

from tam.containers import open_services
from tam.domain.model import Job, JobType
from tam.settings import Settings
from tests.cli.conftest import Cli

STEP_NAMES = ("sourceCompanies", "qualify", "findContacts", "checkLinkedin", "refineDiscolike")


def add_job(cli: Cli, project: str, job_type: JobType, *, started: bool) -> Job:
    """A job as a closed terminal leaves it: pending, or running with a heartbeat long gone."""

    async def main() -> Job:
        settings = Settings(_env_file=None, tam_store="sqlite", tam_sqlite_path=cli.env["TAM_SQLITE_PATH"])
        async with open_services(settings) as s:
            jobs = s.jobs
            job = await jobs.add(Job(project_id=UUID(project), job_type=job_type))
            if started:
                job = await jobs.start(job.id, datetime.now(UTC) - timedelta(minutes=10))
            return job

    return asyncio.run(main())


def job_rows(cli: Cli, project: str) -> dict[str, dict[str, object]]:
    return {str(r["id"]): r for r in cli.rows("tam_job_queue", project)}


def test_cancel_a_job_left_running_by_its_short_id(cli: Cli) -> None:
    project = cli("projects", "create", "--name", "Cancel", "--icp", "B2B").stdout.strip()
    job = add_job(cli, project, JobType.FIND_CONTACTS, started=True)
    listed = cli("jobs", "--project", project).stdout
    assert str(job.id) in listed and "findContacts" in listed and "running" in listed

    cancelled = cli("jobs", "cancel", str(job.id)[:8])
    assert cancelled.stdout.strip() == f"cancelled job {job.id} (findContacts; nothing was done yet)"
    assert job_rows(cli, project)[str(job.id)]["status"] == "cancelled"

    again = cli("jobs", "cancel", str(job.id), check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == f"tam: job {job.id} is already cancelled; nothing to cancel"
    unknown = cli("jobs", "cancel", "ffffffff", check=False)
    assert unknown.returncode == 1 and "no job id starts with 'ffffffff'" in unknown.stderr


def test_run_names_the_active_job_and_follow_picks_it_up(cli: Cli, tmp_path: object) -> None:
    project = cli("projects", "create", "--name", "Active", "--icp", "B2B").stdout.strip()
    cli("run", "sourceCompanies", "--project", project)
    waiting = add_job(cli, project, JobType.QUALIFY, started=False)

    refused = cli("run", "qualify", "--project", project, check=False)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert f"qualify already has job {waiting.id} pending" in refused.stderr
    assert f"tam run qualify --project {project} --follow" in refused.stderr
    assert f"tam jobs cancel {waiting.id}" in refused.stderr

    followed = cli("run", "qualify", "--project", project, "--follow")
    assert followed.stdout.strip().splitlines()[-1].startswith(f"job {waiting.id} completed")
    qualify_jobs = [r for r in job_rows(cli, project).values() if r["job_type"] == "qualify"]
    assert len(qualify_jobs) == 1, "no second job for the step"
    assert qualify_jobs[0]["status"] == "completed"


def test_one_name_per_step_and_80_columns(cli: Cli) -> None:
    narrow = Cli(cli.cwd, {**cli.env, "COLUMNS": "80"})
    demo = narrow("demo", "--companies", "8", "--latency", "0", "--fault-rate", "0")
    project = narrow("projects", "create", "--name", "Narrow", "--icp", "B2B").stdout.strip()
    outputs = {
        "run": narrow("run", "sourceCompanies", "--project", project).stdout,
        "run qualify": narrow("run", "qualify", "--project", project).stdout,
        "demo": demo.stdout,
        "jobs": narrow("jobs").stdout,
        "run help": narrow("run", "--help").stdout,
    }
    unknown_step = narrow("run", "findcontact", "--project", project, check=False).stderr  # one line
    for what, text in outputs.items():
        too_wide = [line for line in text.splitlines() if len(line) > 80]
        assert not too_wide, (what, too_wide)
    for name in STEP_NAMES:
        assert name in outputs["demo"]
        assert name in unknown_step
    assert "Find contacts" not in outputs["demo"] and "find-contacts" not in unknown_step
    assert "sourceCompanies" in outputs["jobs"] and "qualify" in outputs["jobs"]
