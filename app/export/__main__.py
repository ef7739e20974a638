"""python -m app.export {download,build}: the model stage's two steps."""

import argparse
import os
import sys
from pathlib import Path

from app.lock import Lock, LockMismatch

from . import UPSTREAM_LOCK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.export", description=__doc__)
    parser.add_argument("--lock", type=Path, default=UPSTREAM_LOCK, help="lock of the upstream files")
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="fetch the locked files of the pinned revision and check them")
    down.add_argument("--out", type=Path, required=True, help="directory to copy the checked files into")
    down.add_argument(
        "--endpoint", default=os.environ.get("HF_ENDPOINT", "https://huggingface.co"), help="HF endpoint"
    )
    down.add_argument("--cache-dir", default=None, help="huggingface_hub cache (default: HF_HOME's)")
    down.add_argument("--repo", default=None, help="expected repo (must be the locked one)")
    down.add_argument("--revision", default=None, help="expected revision (must be the locked one)")
    build = sub.add_parser("build", help="export ONNX fp32 + int8 from a snapshot, verify, write the lock")
    build.add_argument("--snapshot", type=Path, required=True, help="directory with the upstream files")
    build.add_argument("--out", type=Path, required=True, help="model directory to write (replaced)")
    args = parser.parse_args(argv)
    lock = Lock.read(args.lock)
    try:
        if args.command == "download":
            from .download import DownloadError, download

            for asked, locked in ((args.repo, lock.repo), (args.revision, lock.revision)):
                if asked not in (None, locked):
                    print(f"error: {asked} is not what {args.lock.name} pins ({lock.repo}@{lock.revision}); "
                          "update the lock (and its sha256s) to change the model", file=sys.stderr)
                    return 5
            try:
                download(lock, args.out, args.endpoint, os.environ.get("HF_TOKEN"), args.cache_dir)
            except DownloadError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(f"{lock.repo}@{lock.revision}: {len(lock.files)} files checked into {args.out}")
        else:
            from .build import build as build_dir
            from .verify import VerificationFailed

            try:
                build_dir(args.snapshot, args.out, lock)
            except VerificationFailed as e:
                print(f"error: {e}", file=sys.stderr)
                return 3
            print(f"model directory for {lock.repo}@{lock.revision} written to {args.out}")
    except LockMismatch as e:
        print(f"error: lock mismatch: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
