"""HTTP for the pipeline's downloads: a reachability probe and an atomic, checked file download.

Both go through requests, as kagglehub does, so HTTPS_PROXY/HTTP_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE
apply to them; ALLDAG_OFFLINE=1 makes the probe answer 'unreachable' without asking the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from alldag import AlldagError

PROXY_HINT = "behind a proxy, set HTTPS_PROXY and, for an intercepting one, REQUESTS_CA_BUNDLE"
CONNECTION_ERRORS = ("ConnectionError", "ConnectTimeout", "ReadTimeout", "ProxyError", "SSLError", "Timeout")


def offline() -> bool:
    """True when ALLDAG_OFFLINE=1: every probe says 'unreachable' (tests, and users who know they are offline)."""
    return os.environ.get("ALLDAG_OFFLINE") == "1"


def origin(url: str) -> str:
    """The scheme and host of url ('https://storage.googleapis.com')."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def reachable(url: str, timeout_s: float = 5.0) -> bool:
    """True if url's server answers an HTTP HEAD request within timeout_s (any status: it is there)."""
    if offline():
        return False
    import requests

    try:
        requests.head(url, timeout=timeout_s, allow_redirects=False).close()
        return True
    except requests.RequestException:
        return False


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    check: Callable[[Path], str | None] = lambda path: None,
    by_hand: str,
    timeout_s: float = 60.0,
) -> None:
    """Download url to dest atomically: into a hidden file beside dest, checked, then renamed.

    check(path) returns None if the downloaded file is good, else what is wrong with it (one clause).
    Raises AlldagError (one line ending in by_hand, what to do instead) on an HTTP error, an unreachable
    server or a failed check; no partial file is left behind.
    """
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    try:
        with requests.get(url, stream=True, timeout=timeout_s) as answer:
            answer.raise_for_status()
            with open(part, "wb") as out:
                for block in answer.iter_content(chunk_size=1 << 20):
                    out.write(block)
        problem = check(part)
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise AlldagError(f"downloading {url} failed ({_reason(exc)}): {by_hand}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if problem:
        part.unlink(missing_ok=True)
        raise AlldagError(f"the download of {url} was rejected ({problem}): {by_hand}")
    part.replace(dest)


def _reason(exc: Exception) -> str:
    """Why a request failed, in a few words (with the proxy hint when the server could not be reached)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    name = type(exc).__name__
    return f"{name}; {PROXY_HINT}" if name in CONNECTION_ERRORS else f"{name}: {' '.join(str(exc).split())[:200]}"
