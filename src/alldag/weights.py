"""Pretrained backbone weights as files: the checksum table of the no-top ImageNet weights files
keras.applications downloads (workflow/resources/imagenet-weights.tsv), which file a backbone needs, the
`fetch_weights` stage that puts one into the cache, and what a training run records about the file it used.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import asdict, astuple, dataclass, fields
from pathlib import Path

from alldag import AlldagError
from alldag.fetch import PROXY_HINT, download_file, origin, reachable

log = logging.getLogger(__name__)
TABLE = "workflow/resources/imagenet-weights.tsv"  # written by tools/imagenet_weights.py
# TEST ONLY: a checksum table to use instead of TABLE (tests serve small fake weights files from a local server)
TEST_TABLE_ENV = "ALLDAG_TEST_WEIGHTS_TABLE"
ANY_SIZE = "*"


@dataclass(frozen=True)
class WeightsFile:
    """One row of the checksum table: the file keras.applications.<backbone> loads at image_size ('*': any
    size without a row of its own), saved as `file` (Keras' cache name) from `url`. file_hash is the hash Keras
    checks (md5 or sha256, by length, as keras.utils.get_file's 'auto'; '' where Keras publishes none);
    sha256 is an optional pin of the file's sha256 ('' when not pinned)."""

    backbone: str
    image_size: str
    file: str
    url: str
    file_hash: str
    sha256: str


COLUMNS = [f.name for f in fields(WeightsFile)]


def table_path(workflow_dir: str | os.PathLike) -> Path:
    """The checksum table of this workflow: TABLE under workflow_dir, unless a test names another one."""
    return Path(os.environ.get(TEST_TABLE_ENV) or Path(workflow_dir) / TABLE)


def read_weights_table(path: str | os.PathLike) -> list[WeightsFile]:
    """The rows of a checksum table (TSV with COLUMNS); raises AlldagError if it is unreadable."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        return [WeightsFile(**{c: row[c] or "" for c in COLUMNS}) for row in rows]
    except (OSError, KeyError, TypeError) as exc:
        raise AlldagError(f"cannot read the weights checksum table '{path}' ({exc}): restore it from git") from None


def format_weights_table(rows: list[WeightsFile]) -> str:
    """The TSV text of a checksum table."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(row) for row in rows)
    return out.getvalue()


def weights_file_for(table: list[WeightsFile], backbone: str, image_size: int) -> WeightsFile:
    """The row of the file keras.applications.<backbone> loads at image_size; AlldagError if the table has none."""
    rows = [row for row in table if row.backbone == backbone]
    exact = [row for row in rows if row.image_size == str(image_size)]
    chosen = exact or [row for row in rows if row.image_size == ANY_SIZE]
    if not chosen:
        raise AlldagError(
            f"no ImageNet weights file is known for backbone {backbone} ({TABLE} has no row for it): set "
            f"train.weights (or backbone_overrides.{backbone}.weights) to a local weights file, or to null"
        )
    return chosen[0]


def pretrained_files(table: list[WeightsFile], settings: dict[str, dict]) -> dict[str, WeightsFile]:
    """The row of the ImageNet weights file of each backbone trained with weights 'imagenet', by backbone.

    settings: backbone -> its `train` settings (backbone_overrides merged in). Raises AlldagError (one line)
    for a backbone without a row, or whose weights is a path to no file.
    """
    for backbone, s in settings.items():
        if s["weights"] not in (None, "imagenet") and not Path(s["weights"]).is_file():
            raise AlldagError(
                f"train.weights of {backbone} is '{s['weights']}', which is not a file (relative paths are from "
                "the working directory): give the path of a weights file for it, imagenet or null"
            )
    return {b: weights_file_for(table, b, s["image_size"]) for b, s in settings.items() if s["weights"] == "imagenet"}


def hash_algorithm(file_hash: str) -> str:
    """'sha256' for a 64-digit hash, else 'md5' (keras.utils.get_file's hash_algorithm='auto')."""
    return "sha256" if len(file_hash) == 64 else "md5"


def mismatch(path: str | os.PathLike, entry: WeightsFile) -> str | None:
    """None if the file at path has entry's hashes, else what differs (one clause)."""
    from alldag.verify import file_hashes

    pins = ((hash_algorithm(entry.file_hash), entry.file_hash), ("sha256", entry.sha256))
    expected = {name: value for name, value in pins if value}
    if not expected:
        return None
    actual = file_hashes(path, tuple(expected))
    wrong = [name for name in expected if actual[name] != expected[name]]
    if not wrong:
        return None
    name = wrong[0]
    return f"its {name} is {actual[name]}, not {expected[name]} as {TABLE} says for {entry.backbone}"


def by_hand(entries: list[WeightsFile], cache: str | os.PathLike) -> str:
    """What to do instead of the download: which file to put where (one clause)."""
    where = ", ".join(f"{Path(cache) / e.file} (from {e.url})" for e in entries)
    return f"put {where} in place, downloaded on a machine with internet access, or set train.weights: null"


def fetch_weights(*, entry: WeightsFile, dest: str | os.PathLike) -> str:
    """Make dest the verified weights file of entry: kept if it is already there and verified, else downloaded
    from entry.url, verified and renamed into place atomically. Returns 'cached' or 'downloaded'.

    Raises AlldagError (one line: which file to put where) if the download fails or does not verify; a
    file in the cache that does not verify is replaced.
    """
    dest = Path(dest)
    if dest.is_file():
        problem = mismatch(dest, entry)
        if problem is None:
            log.info("%s: %s is cached and verified; nothing fetched", entry.backbone, dest)
            return "cached"
        log.warning("%s: the cached %s does not verify (%s): downloading it again", entry.backbone, dest, problem)
    if not entry.file_hash and not entry.sha256:
        log.warning("%s: Keras publishes no hash for %s: it is downloaded unverified", entry.backbone, entry.file)
    log.info("%s: downloading %s to %s", entry.backbone, entry.url, dest)
    download_file(entry.url, dest, check=lambda path: mismatch(path, entry), by_hand=by_hand([entry], dest.parent))
    log.info("%s: %s downloaded (%d bytes) and verified", entry.backbone, dest, dest.stat().st_size)
    return "downloaded"


def check_cached(path: str | os.PathLike, entry: WeightsFile) -> None:
    """Raise AlldagError (one line) unless the cached weights file at path verifies against entry."""
    problem = mismatch(path, entry)
    if problem:
        raise AlldagError(
            f"{path} is not the ImageNet weights file of {entry.backbone} ({problem}): delete it and rerun, "
            f"and rule fetch_weights downloads it again; offline, {by_hand([entry], Path(path).parent)}"
        )


def check_fetchable(entries: list[WeightsFile], cache: str | os.PathLike) -> None:
    """Raise AlldagError (one line: which file to put where) when weights files that are not in the cache must be
    fetched and their server cannot be reached (offline, or a proxy in the way); before any job runs."""
    missing = [e for e in entries if not (Path(cache) / e.file).is_file()]
    unreachable = sorted({origin(e.url) for e in missing if not reachable(origin(e.url))})
    if unreachable:
        stuck = [e for e in missing if origin(e.url) in unreachable]
        raise AlldagError(
            f"ImageNet weights are not in {cache}/ and {', '.join(unreachable)} cannot be reached ({PROXY_HINT}): "
            + by_hand(stuck, cache)
        )


@dataclass(frozen=True)
class WeightsPlan:
    """The ImageNet weights files a study's backbones start from (by backbone) and the cache they go to: what
    the train and fetch_weights rules' input functions hand out."""

    cache: str
    by_backbone: dict[str, WeightsFile]

    @property
    def by_file(self) -> dict[str, WeightsFile]:
        return {entry.file: entry for entry in self.by_backbone.values()}

    def train_input(self, backbone: str) -> dict[str, str]:
        """The cached file a backbone starts from, as the train rule's named input ({} for none)."""
        entry = self.by_backbone.get(backbone)
        return {"weights": f"{self.cache}/{entry.file}"} if entry else {}

    def entry_of(self, backbone: str) -> dict | None:
        """The checksum-table row of that file (training verifies the file against it), or None."""
        entry = self.by_backbone.get(backbone)
        return asdict(entry) if entry else None

    def fetch_entry(self, file: str) -> dict:
        """The checksum-table row of the file a fetch_weights job writes."""
        return asdict(self.by_file[file])

    def check_fetchable(self, files: list[str]) -> None:
        """check_fetchable for these cached file names (the fetch_weights jobs that must run)."""
        check_fetchable([self.by_file[f] for f in files], self.cache)


def weights_plan(settings: dict[str, dict], *, cache: str, workflow_dir: str | os.PathLike) -> WeightsPlan:
    """The WeightsPlan of these backbones' `train` settings (by backbone), from the shipped checksum table."""
    return WeightsPlan(cache, pretrained_files(read_weights_table(table_path(workflow_dir)), settings))


def weights_lineage(path: str | os.PathLike | None) -> dict[str, str]:
    """What a training run records about the weights file it started from: its name and sha256 ({} for none)."""
    if not path:
        return {}
    from alldag.verify import sha256_file

    return {"weights_file": Path(path).name, "weights_sha256": sha256_file(path)}
