"""Where the images come from: the dataset source decided before any job runs (a local copy, Kaggle if it
answers, else synthetic data), and the `download` stage that makes the chosen dataset available and lists
its images."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from alldag import AlldagError
from alldag.classes import CLASSES
from alldag.data import scan_dataset
from alldag.fetch import CONNECTION_ERRORS, PROXY_HINT, offline, reachable
from alldag.synthetic import generate_dataset
from alldag.tables import write_tsv_atomic
from alldag.verify import VERIFY_COLUMNS, read_manifest, verification_failure, verify_folder

log = logging.getLogger(__name__)
KAGGLE_HANDLE = "mehradaria/leukemia"


@dataclass(frozen=True)
class SourceDecision:
    """Which dataset a run uses: kind is 'synthetic', 'local' or 'kaggle'; root is set for local."""

    kind: str
    root: str | None
    reason: str
    demo: bool  # True when 'auto' fell back to synthetic data: the fast demo settings apply

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def has_layout(root: str | os.PathLike) -> bool:
    """True if root holds an Original/ folder with at least one known class folder."""
    original = Path(root) / "Original"
    return original.is_dir() and any((original / c).is_dir() for c in CLASSES)


def kaggle_endpoint() -> str:
    """The Kaggle API root kagglehub talks to (kagglesdk's choice: KAGGLE_API_ENVIRONMENT, default PROD)."""
    from kagglesdk.kaggle_env import get_endpoint, get_env

    return get_endpoint(get_env())


def kaggle_reachable(timeout_s: float = 5.0) -> bool:
    """True if the Kaggle API answers an HTTP request within timeout_s (alldag.fetch.reachable: the proxy
    variables apply to the probe exactly as they will to kagglehub's download; ALLDAG_OFFLINE=1 skips it)."""
    return not offline() and reachable(kaggle_endpoint(), timeout_s)


def resolve_source(source: str, local_dir: str | None, online=kaggle_reachable) -> SourceDecision:
    """Decide the dataset source before any job runs.

    source: 'auto' | 'synthetic' | 'local' | 'kaggle'. 'auto' takes a local copy if local_dir
    holds one, else Kaggle if reachable, else synthetic data in demo mode. Raises AlldagError
    (one line, with the fix) when an explicit choice cannot work.
    """
    if source == "synthetic":
        return SourceDecision("synthetic", None, "data.source is 'synthetic'", demo=False)
    if source == "local":
        if not local_dir or not Path(local_dir).is_dir():
            raise AlldagError(
                f"data.source is 'local' but data.local_dir '{local_dir}' is not a folder: "
                "download the ALL dataset (Kaggle mehradaria/leukemia) and set data.local_dir to it"
            )
        if not has_layout(local_dir):
            raise AlldagError(
                f"data.local_dir '{local_dir}' is not laid out as the ALL dataset: expected "
                f"{Path(local_dir) / 'Original'}/<Class>/*.jpg with Class in {', '.join(CLASSES)}"
            )
        return SourceDecision("local", str(Path(local_dir).resolve()), "data.source is 'local'", demo=False)
    if source == "kaggle":
        if not online():
            raise AlldagError(
                f"data.source is 'kaggle' but {kaggle_endpoint()} cannot be reached (behind a proxy, set "
                "HTTPS_PROXY): download https://www.kaggle.com/datasets/mehradaria/leukemia by hand, unzip it, "
                "and set data.source: local with data.local_dir pointing at the folder holding Original/"
            )
        return SourceDecision("kaggle", None, "data.source is 'kaggle'", demo=False)
    if source != "auto":
        raise AlldagError(f"data.source '{source}' is unknown: use auto, synthetic, local or kaggle")
    if local_dir and has_layout(local_dir):
        return SourceDecision(
            "local", str(Path(local_dir).resolve()), f"auto: found a local copy in {local_dir}", demo=False
        )
    if online():
        return SourceDecision("kaggle", None, "auto: no local copy, Kaggle reachable", demo=False)
    return SourceDecision(
        "synthetic",
        None,
        f"auto: no local copy in '{local_dir}' and Kaggle unreachable, so this run uses the BUILT-IN "
        "SYNTHETIC smears with the fast demo settings; its numbers say nothing about real blood smears",
        demo=True,
    )


def decide_source(*, data: dict, provenance: str | os.PathLike, online=kaggle_reachable) -> SourceDecision:
    """The run's dataset source, decided once before any job runs (resolve_source); an earlier 'auto' decision
    for Kaggle or synthetic data is reused from provenance, so later invocations and jobs never re-probe the
    network. data: the config's `data` section; provenance: the download job's dataset.json."""
    if data["source"] == "auto" and not has_layout(data["local_dir"]) and Path(provenance).is_file():
        earlier = json.loads(Path(provenance).read_text())
        if earlier.get("requested") == "auto" and earlier["source"] in ("kaggle", "synthetic"):
            return SourceDecision(kind=earlier["source"], root=None, reason=earlier["reason"], demo=earlier["demo"])
    return resolve_source(data["source"], data["local_dir"], online=online)


def expected_class_counts(source: SourceDecision, data: dict) -> dict[str, int] | None:
    """Images per class the run will have, known before any job (for the task checks): counted in a local
    copy, the configured number for synthetic data; None for Kaggle (known after the download)."""
    from alldag.data import class_counts

    if source.kind == "local":
        return class_counts(source.root, data["folder"])
    if source.kind == "synthetic":
        return {c: data["synthetic"]["images_per_class"] for c in CLASSES}
    return None


def find_dataset_root(top: str | os.PathLike, max_depth: int = 3) -> Path:
    """The folder holding Original/ inside an unpacked download (it may be nested)."""
    top = Path(top)
    candidates = [top] + [p for d in range(1, max_depth + 1) for p in sorted(top.glob("/".join(["*"] * d)))]
    for p in candidates:
        if p.is_dir() and has_layout(p):
            return p
    raise AlldagError(
        f"the download in '{top}' holds no Original/<Class>/ folders: remove it and rerun, "
        "or place the dataset by hand and set data.source: local"
    )


BY_HAND = (
    "download it by hand from https://www.kaggle.com/datasets/mehradaria/leukemia, unzip it and set "
    "data.source: local, data.local_dir: <folder holding Original/>"
)


def kaggle_failure(handle: str, exc: Exception) -> str:
    """One line saying why kagglehub's download failed and what to do."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return (
            f"Kaggle refused to send dataset '{handle}' (HTTP {status}): put your Kaggle API token in "
            f"~/.kaggle/kaggle.json or set KAGGLE_USERNAME and KAGGLE_KEY, or {BY_HAND}"
        )
    if status == 404:
        return f"Kaggle has no dataset '{handle}' (HTTP 404): check the handle, or {BY_HAND}"
    if type(exc).__name__ in CONNECTION_ERRORS:
        return f"Kaggle could not be reached for dataset '{handle}' ({type(exc).__name__}; {PROXY_HINT}), or {BY_HAND}"
    if isinstance(exc, (ValueError, EOFError)) or type(exc).__name__ in (
        "DataCorruptionError",
        "ChunkedEncodingError",
        "BadZipFile",
    ):
        return (
            f"the download of Kaggle dataset '{handle}' is incomplete or corrupt ({type(exc).__name__}: "
            f"{exc}): rerun to download it again, or {BY_HAND}"
        )
    return f"downloading Kaggle dataset '{handle}' failed ({type(exc).__name__}: {exc}): {BY_HAND}"


def kaggle_download(handle: str = KAGGLE_HANDLE) -> Path:
    """Download (or reuse kagglehub's cache of) the Kaggle dataset; returns the folder holding Original/.

    kagglehub caches under KAGGLEHUB_CACHE (default ~/.cache/kagglehub): a second run only asks Kaggle
    for the current version. KAGGLE_API_ENVIRONMENT picks the server (kagglesdk; TEST is localhost:7777).
    """
    import kagglehub

    try:
        path = kagglehub.dataset_download(handle)
    except Exception as exc:  # kagglehub raises requests/HTTP, archive and checksum errors of many kinds
        raise AlldagError(" ".join(kaggle_failure(handle, exc).split())) from None
    return find_dataset_root(path)


def verify_dataset(root: Path, manifest_path: str | os.PathLike | None, policy: str, verification_tsv) -> dict:
    """Check root against the checksum manifest; fail (policy 'strict') on missing or changed files.

    Writes verification_tsv (one row per file, see alldag.verify); returns status counts.
    policy: 'strict' (fail), 'warn' (log and continue) or 'off' (skip, empty table).
    """
    if policy == "off" or manifest_path is None:
        write_tsv_atomic(pd.DataFrame(columns=VERIFY_COLUMNS), verification_tsv)
        return {"skipped": True}
    report = verify_folder(root, read_manifest(manifest_path))
    write_tsv_atomic(report, verification_tsv)
    counts = {k: int(v) for k, v in report["status"].value_counts().items()}
    failure = verification_failure(report)
    if failure and policy == "strict":
        bad = report[report["status"] != "ok"]
        log.error("files that do not match the manifest:\n%s", bad.head(50).to_string(index=False))
        raise AlldagError(failure)
    if failure:
        log.warning("continuing although %s", failure)
    log.info("manifest verification: %s", counts)
    return counts


@dataclass(frozen=True)
class DownloadSettings:
    """What the download stage does: the source `decision`, which image folder to list (Original or
    Segmented), the synthetic generator's options (used when the decision is synthetic: images per class,
    seed, `planted`: generate_dataset's shortcut, colour_shortcut and fields_per_patient), and how real data
    are verified (against `manifest_path`, `verify`: strict | warn | off). `requested`: data.source as
    configured (the provenance records it)."""

    decision: SourceDecision
    folder: str = "Original"
    synthetic_dir: str = ""
    images_per_class: dict[str, int] = field(default_factory=dict)
    synthetic_seed: int = 0
    planted: dict[str, float] = field(default_factory=dict)
    manifest_path: str | None = None
    verify: str = "strict"
    requested: str = ""

    @classmethod
    def from_params(cls, params) -> DownloadSettings:
        """From the download rule's params (source, requested, folder, synthetic, synthetic_dir, manifest,
        verify)."""
        synthetic = params.synthetic
        return cls(
            decision=SourceDecision(**params.source),
            folder=params.folder,
            synthetic_dir=params.synthetic_dir,
            images_per_class={c: synthetic["images_per_class"] for c in CLASSES},
            synthetic_seed=synthetic["seed"],
            planted={k: synthetic[k] for k in ("shortcut", "colour_shortcut", "fields_per_patient")},
            manifest_path=params.manifest,
            verify=params.verify,
            requested=params.requested,
        )


@dataclass(frozen=True)
class DownloadOutputs:
    """The files the download stage writes (paths)."""

    dataset: str  # dataset.tsv: image_id, label, path, mask_path
    provenance: str  # dataset.json: source, root, reason, demo flag, counts, verification
    verification: str  # verification.tsv: every file's check against the manifest


def materialise_dataset(*, settings: DownloadSettings, outputs: DownloadOutputs) -> int:
    """Make the dataset of settings.decision available and write its image list and provenance.

    Synthetic data is generated into settings.synthetic_dir; local and Kaggle data are read in place. Real data
    (local or Kaggle) are verified against settings.manifest_path first (see verify_dataset). Returns the
    number of images listed.
    """
    s, decision = settings, settings.decision
    folder, manifest_path = s.folder, s.manifest_path
    if decision.kind == "synthetic":
        log.warning("USING BUILT-IN SYNTHETIC DATA: %s", decision.reason)
        generate_dataset(s.synthetic_dir, s.images_per_class, s.synthetic_seed, **s.planted)
        root = Path(s.synthetic_dir)
    elif decision.kind == "kaggle":
        root = kaggle_download()
    else:
        root = Path(decision.root)
    # Synthetic data have no published manifest: they are deterministic from their seed.
    verification = verify_dataset(
        root, None if decision.kind == "synthetic" else manifest_path, s.verify, outputs.verification
    )
    dataset = scan_dataset(root, folder)
    if dataset.empty:
        raise AlldagError(f"no images found under '{root / folder}': check data.local_dir and data.folder")
    counts = dataset["label"].value_counts().to_dict()
    log.info("dataset at %s: %s", root, counts)
    write_tsv_atomic(dataset, outputs.dataset)
    prov = {
        "requested": s.requested or decision.kind,
        "source": decision.kind,
        "root": str(root.resolve()),
        "reason": decision.reason,
        "demo": decision.demo,
        "synthetic": decision.kind == "synthetic",
        "folder": folder,
        "counts": {k: int(v) for k, v in counts.items()},
        "verification": verification,
        "manifest": str(manifest_path) if manifest_path and decision.kind != "synthetic" else None,
    }
    Path(outputs.provenance).write_text(json.dumps(prov, indent=2))
    return len(dataset)
