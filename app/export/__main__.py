"""python -m app.export {lock,download,local,build}: making a model's lock, and the model stage's steps."""

import argparse
import os
import sys
from pathlib import Path

from app.lock import Lock, LockMismatch

ENDPOINT = os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.export", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    lock = sub.add_parser("lock", help="lock a repo@revision: choose its files by policy, record sha256 and size")
    lock.add_argument("--repo", required=True)
    lock.add_argument("--revision", required=True, help="a full commit sha")
    lock.add_argument("--out", type=Path, required=True, help="lock file to write")
    lock.add_argument("--endpoint", default=ENDPOINT, help="HF endpoint (default: HF_ENDPOINT or the hub)")
    lock.add_argument("--dir", type=Path, help="lock these files on disk instead of downloading")
    lock.add_argument("--cache-dir", default=None, help="huggingface_hub cache (default: HF_HOME's)")
    down = sub.add_parser("download", help="fetch the locked files of the pinned revision and check them")
    down.add_argument("--lock", type=Path, required=True, help="the model's lock (models/REPO/REVISION.json)")
    down.add_argument("--out", type=Path, required=True, help="directory to copy the checked files into")
    down.add_argument("--endpoint", default=ENDPOINT, help="HF endpoint (default: HF_ENDPOINT or the hub)")
    down.add_argument("--cache-dir", default=None, help="huggingface_hub cache (default: HF_HOME's)")
    local = sub.add_parser("local", help="copy the locked files from a directory on disk and check them")
    local.add_argument("--lock", type=Path, required=True, help="the model's lock (models/REPO/REVISION.json)")
    local.add_argument("--dir", type=Path, required=True, help="the model's files (a snapshot of the revision)")
    local.add_argument("--out", type=Path, required=True, help="directory to copy the checked files into")
    build = sub.add_parser("build", help="export ONNX and OpenVINO IR from a snapshot, verify, write the lock")
    build.add_argument("--lock", type=Path, required=True, help="the model's lock (models/REPO/REVISION.json)")
    build.add_argument("--snapshot", type=Path, required=True, help="directory with the upstream files")
    build.add_argument("--out", type=Path, required=True, help="model directory to write (replaced)")
    return p


def make_lock(args) -> int:
    from . import locking

    try:
        if args.dir:
            lock, snapshot = locking.lock_local(args.dir, args.repo, args.revision), args.dir
        else:
            lock, snapshot = locking.lock_from_hub(args.repo, args.revision, args.endpoint,
                                                   os.environ.get("HF_TOKEN"), args.cache_dir)
    except locking.LockRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 6
    except OSError as e:  # huggingface_hub's HTTP errors are OSErrors
        print(f"error: listing or downloading {args.repo}@{args.revision} from {args.endpoint} failed: {e}. "
              "Check the endpoint (--hf-endpoint), the repo, the revision and the token.", file=sys.stderr)
        return 2
    locking.write(lock, args.out, license=locking.model_license(Path(snapshot)))
    print(f"{args.repo}@{args.revision}: {len(lock.files)} files locked in {args.out}; review it and commit it "
          f"as models/{args.repo}/{args.revision}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "lock":
        return make_lock(args)
    lock = Lock.read(args.lock)
    try:
        if args.command == "download":
            from .download import DownloadError, download

            try:
                download(lock, args.out, args.endpoint, os.environ.get("HF_TOKEN"), args.cache_dir)
            except DownloadError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(f"{lock.repo}@{lock.revision}: {len(lock.files)} files checked into {args.out}")
        elif args.command == "local":
            from .download import copy_checked

            copy_checked(lock, args.dir, args.out)
            print(f"{lock.repo}@{lock.revision}: {len(lock.files)} files from {args.dir} checked into {args.out}")
        else:
            from .build import build as build_dir
            from .st_config import Unsupported
            from .verify import VerificationFailed

            try:
                build_dir(args.snapshot, args.out, lock)
            except VerificationFailed as e:
                print(f"error: {e}", file=sys.stderr)
                return 3
            except Unsupported as e:
                print(f"error: unsupported model: {e}", file=sys.stderr)
                return 6
            print(f"model directory for {lock.repo}@{lock.revision} written to {args.out}")
    except LockMismatch as e:
        print(f"error: lock mismatch: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
