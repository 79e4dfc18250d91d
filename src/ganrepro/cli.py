"""What every stage script shares: load params, turn known errors into one clear line and exit 2."""
from __future__ import annotations

import signal
import sys
from typing import Callable

from ganrepro.config import ConfigError
from ganrepro.corrupt import CorruptFileError
from ganrepro.data.download import DownloadError
from ganrepro.registry import UnknownNameError
from ganrepro.utils import OutputError

USER_ERRORS = (ConfigError, UnknownNameError, DownloadError, OutputError, FileNotFoundError, CorruptFileError)


def run_name(argv: list[str] | None = None) -> str:
    """The `--run NAME` argument of the per-run stages (default: the experiment)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="experiment", help="'experiment' or a name from params.yaml runs:")
    return parser.parse_args(argv).run


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main(stage: Callable[[], object], name: str) -> None:
    """Run a stage; SIGTERM (as from `kill` or a scheduler) unwinds like Ctrl-C, so MLflow runs end KILLED."""
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        stage()
    except USER_ERRORS as e:
        print(f"error in stage {name}: {e}", file=sys.stderr)
        sys.exit(2)
