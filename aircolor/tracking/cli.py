"""The ``aircolor tracking`` command group: ``replay`` sends what runs could not deliver to MLflow."""

from __future__ import annotations

import argparse
from typing import Any

_REPLAY_EPILOG = """\
example:
  aircolor tracking replay runs/pix2pix-ngf32/mlflow-spool
  aircolor tracking replay runs/ --tracking-uri http://mlflow.internal:5000

A run whose MLflow server was unreachable keeps its params, tags, metric points and artifact copies in
SPOOL_DIR/<key>.spool.jsonl (+ <key>.files/). Replay sends them in order, marks progress in the file, and
deletes it once everything is sent; running it again never sends a record twice. Spools of trackers that are
still running are skipped. Exit code: 0 when every spool was sent, 1 when some are kept for a later replay.
"""


def _cmd_replay(args: argparse.Namespace) -> int:
    from aircolor.tracking.replay import replay

    result = replay(args.spool_dir, args.tracking_uri)
    print(result.format())
    return 0 if result.ok else 1


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``tracking`` group (with ``replay``) to the top-level ``aircolor`` subcommands."""
    group = subparsers.add_parser("tracking", help="MLflow tracking utilities (replay spooled records)",
                                  description="MLflow tracking utilities: send what runs spooled while their "
                                              "MLflow server was unreachable (replay), exactly once.",
                                  epilog="example:\n  aircolor tracking replay runs/pix2pix-ngf32/mlflow-spool",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = group.add_subparsers(dest="tracking_command", metavar="COMMAND", parser_class=type(group), required=True)
    p = sub.add_parser(
        "replay", help="send tracking records spooled while the MLflow server was unreachable",
        description="Send the params, tags, metrics and artifacts that runs spooled while their MLflow server "
                    "was unreachable, exactly once, to the tracking URI each spool recorded (or --tracking-uri).",
        epilog=_REPLAY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spool_dir", metavar="SPOOL_DIR",
                   help="a run's spool folder, any folder above spool folders (searched recursively), or one "
                        "*.spool.jsonl file")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="send to this MLflow tracking URI instead of the one each spool recorded")
    p.set_defaults(func=_cmd_replay)
    return group
