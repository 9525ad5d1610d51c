"""`python -m tam.entrypoints.worker ARGS` (what `tam worker` runs): Dramatiq's command line with tam's
logging set up first, so that every line of the worker, Dramatiq's own boot and shutdown lines
included, is a JSON line. `--skip-logging` keeps Dramatiq from installing its plain-text format;
the forked worker processes inherit this set-up and `setup` renews it on their log pipe. When they
have exited, their live gauges are dropped from PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import sys

from dramatiq import cli

from tam.containers import forget_exited_processes
from tam.logs import configure_logging, level_from_env, secrets_of
from tam.settings import Settings


def main(argv: list[str]) -> int:
    try:
        secrets = secrets_of(Settings())
    except Exception:  # invalid settings are reported by `setup` in the worker process
        secrets = []
    configure_logging(json=True, secrets=secrets, level=level_from_env())
    args = cli.make_argument_parser().parse_args([*argv, "--skip-logging"])  # type: ignore[no-untyped-call]
    code = int(cli.main(args) or 0)  # type: ignore[no-untyped-call]
    # The worker processes are gone: their calls in flight must not stay on /metrics.
    forget_exited_processes()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
