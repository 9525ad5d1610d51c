"""`tam run --estimate` prints the estimate and runs nothing; `--max-cost` stops a job at its budget
and a later run resumes it; `tam jobs` shows each job's cost."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_estimate_then_a_capped_run_then_the_rest(cli: Cli, tmp_path: Path) -> None:
    project_id = cli("projects", "create", "--name", "Costs", "--icp", "B2B SaaS").stdout.strip()
    source = tmp_path / "companies.csv"
    source.write_text("name,domain\n" + "".join(f"Co {i},co{i}.example\n" for i in range(30)), encoding="utf-8")
    cli("companies", "import", str(source), "--project", project_id)

    estimate = cli("run", "qualify", "--project", project_id, "--estimate")
    lines = dict(line.split(None, 1) for line in estimate.stdout.replace("input tokens", "input_tokens")
                 .replace("output tokens", "output_tokens").splitlines())  # fmt: skip
    assert (lines["items"], lines["calls"], lines["mode"]) == ("30", "30", "online")
    dollars = float(lines["cost"].lstrip("$"))
    assert dollars > 0
    assert cli.rows("tam_job_queue", project_id) == []  # nothing ran, nothing stored

    # The sandbox qualifier uses at most 600 input and 40 output tokens a call (~$0.0016 at Sonnet 5.5).
    capped = cli("run", "qualify", "--project", project_id, "--max-cost", "0.01", check=False)
    assert capped.returncode == 1
    (job,) = cli.rows("tam_job_queue", project_id)
    left = 30 - job["items_done"]
    assert f"budget of $0.01 reached; {left} companies left" in capped.stderr
    assert 0 < left < 30
    assert job["max_cost_usd"] == 0.01

    cli("run", "qualify", "--project", project_id)
    jobs = cli("jobs", "--project", project_id).stdout
    assert "$0.0" in jobs and "budget of $0.01 reached" in jobs
    statuses = {r["status"] for r in cli.rows("tam_job_queue", project_id)}
    assert statuses == {"failed", "completed"}
    usage = [json.loads(r["usage"]) for r in cli.rows("tam_job_queue", project_id)]
    assert sum(u["claude_output_tokens"] for u in usage) == 30 * 40  # every company asked once
