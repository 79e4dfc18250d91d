"""python -m ganrepro.dryrun [--runs a,b] [--keep DIR] [--plan FILE]: the paper dry run (see ganrepro.dryrun)."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ganrepro.dryrun.run import DEFAULT_PLAN, DEFAULT_WORKSPACE, DryRunError, dry_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ganrepro.dryrun",
        description="Run the paper profile's whole DAG offline on this CPU: paper architectures, sizes and "
                    "metric protocols, 2 steps, synthetic data and stand-in weights. Not a result.")
    parser.add_argument("--runs", help="comma-separated runs of params.yaml `runs:` to keep (default: all)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help=f"the workspace folder, kept afterwards (default: <project>/{DEFAULT_WORKSPACE})")
    parser.add_argument("--plan", type=Path, metavar="FILE",
                        help=f"where to write the plan (default: <project>/{DEFAULT_PLAN})")
    args = parser.parse_args(argv)
    runs = [r for r in (args.runs or "").split(",") if r] or None

    def terminated(signum, frame):  # SIGTERM unwinds like Ctrl-C: DVC is stopped, the times so far are kept
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    try:
        dry_run(runs, args.keep, args.plan)
    except DryRunError as e:
        print(f"paper dry run FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
