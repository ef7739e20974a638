"""`python -m app.healthcheck`: exit 0 when the service on this host answers /ready (the image's HEALTHCHECK)."""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("EMBEDDER_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as e:
        print(f"not ready: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
