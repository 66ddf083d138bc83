"""``python -m training.jobs run JOB_DIR | list | cancel JOB_ID``: the supervisor, and jobs from the shell."""
import core  # noqa: F401  (first: safe native-library import order)

import argparse
import json
import logging
import sys
from pathlib import Path

from training.jobs.manager import JobManager
from training.jobs.supervisor import run_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.jobs",
                                     description="Background training jobs: start, watch, cancel, register.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="supervise one job (started by JobManager.start)")
    run.add_argument("job_dir", type=Path)
    sub.add_parser("list", help="print the jobs as JSON lines")
    cancel = sub.add_parser("cancel", help="cancel a running job")
    cancel.add_argument("job_id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        return run_job(args.job_dir.resolve())
    manager = JobManager()
    if args.command == "cancel":
        print(json.dumps(manager.cancel(args.job_id).to_dict()))
    else:
        for job in manager.list():
            print(json.dumps(job.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
