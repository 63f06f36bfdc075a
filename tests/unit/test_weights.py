"""alldag.weights and alldag.fetch: the ImageNet weights checksum table, fetching a weights file into the cache
(from a local server serving a small fake file: no test downloads real weights), the offline check, and the
lineage a training run records."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import socket
import sys

import pytest

from alldag import AlldagError
from alldag.backbones import REGISTRY
from alldag.weights import (
    TABLE,
    WeightsFile,
    check_cached,
    check_fetchable,
    fetch_weights,
    format_weights_table,
    pretrained_files,
    read_weights_table,
    weights_lineage,
)
from net_stubs import PROXY_VARS, ConnectProxy, FileServer
from workflow_helpers import REPO

FAKE = b"a stand-in for an HDF5 weights file; only its hash matters here\n" * 64
TABLE_ROWS = read_weights_table(REPO / TABLE)


def fake_entry(url: str, data: bytes = FAKE, **changes) -> WeightsFile:
    """A checksum-table row for data served at url (md5 file_hash, as most of Keras' files have)."""
    fields = dict(backbone="VGG16", image_size="*", file="vgg16_notop.h5", url=url, sha256="")
    return WeightsFile(**{**fields, "file_hash": hashlib.md5(data).hexdigest(), **changes})


@pytest.fixture(autouse=True)
def direct(monkeypatch):
    """No proxy, and not marked offline (the workflow tests' ALLDAG_OFFLINE=1 must not leak in)."""
    for var in (*PROXY_VARS, "ALLDAG_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


def test_fetch_downloads_verifies_and_writes_the_file_atomically(tmp_path):
    cache = tmp_path / "cache"
    with FileServer({"/w/vgg16_notop.h5": FAKE}) as server:
        entry = fake_entry(server.url("/w/vgg16_notop.h5"))
        assert fetch_weights(entry=entry, dest=cache / entry.file) == "downloaded"
    assert server.requests == [("GET", "/w/vgg16_notop.h5")]
    assert (cache / entry.file).read_bytes() == FAKE
    assert [p.name for p in cache.iterdir()] == [entry.file]  # no partial file beside it


def test_a_cached_verified_file_means_no_request(tmp_path):
    (tmp_path / "vgg16_notop.h5").write_bytes(FAKE)
    with FileServer({"/w/vgg16_notop.h5": FAKE}) as server:
        entry = fake_entry(server.url("/w/vgg16_notop.h5"))
        assert fetch_weights(entry=entry, dest=tmp_path / entry.file) == "cached"
        check_fetchable([entry], tmp_path)
    assert server.requests == []


def test_a_cached_file_that_does_not_verify_is_downloaded_again(tmp_path):
    (tmp_path / "vgg16_notop.h5").write_bytes(FAKE[:100])  # an interrupted copy by hand
    with FileServer({"/w/vgg16_notop.h5": FAKE}) as server:
        entry = fake_entry(server.url("/w/vgg16_notop.h5"))
        assert fetch_weights(entry=entry, dest=tmp_path / entry.file) == "downloaded"
    assert (tmp_path / entry.file).read_bytes() == FAKE


@pytest.mark.parametrize("pin", ["file_hash", "sha256"])
def test_a_corrupted_download_is_rejected_with_one_line_and_no_file_left(tmp_path, pin):
    corrupt = FAKE[:-8] + b"flipped!"
    cache = tmp_path / "cache"
    with FileServer({"/w/vgg16_notop.h5": corrupt}) as server:
        url = server.url("/w/vgg16_notop.h5")
        changes = {"file_hash": ""} if pin == "sha256" else {}
        entry = fake_entry(url, **changes, **({"sha256": hashlib.sha256(FAKE).hexdigest()} if pin == "sha256" else {}))
        with pytest.raises(AlldagError) as err:
            fetch_weights(entry=entry, dest=cache / entry.file)
    message = str(err.value)
    algorithm = "md5" if pin == "file_hash" else "sha256"
    assert "\n" not in message and message.startswith(f"the download of {url} was rejected (its {algorithm} is ")
    assert f"put {cache / entry.file} (from {url}) in place" in message and message.endswith("train.weights: null")
    assert list(cache.iterdir()) == []


def test_http_errors_and_an_unreachable_server_are_one_line(tmp_path):
    with FileServer({}) as server:
        entry = fake_entry(server.url("/w/vgg16_notop.h5"))
        with pytest.raises(AlldagError) as err:
            fetch_weights(entry=entry, dest=tmp_path / entry.file)
    assert "\n" not in str(err.value) and "failed (HTTP 404)" in str(err.value)
    with socket.create_server(("127.0.0.1", 0)) as spare:
        closed = spare.getsockname()[1]  # nobody listens there once this socket is closed
    entry = fake_entry(f"http://127.0.0.1:{closed}/w/vgg16_notop.h5")
    with pytest.raises(AlldagError) as err:
        fetch_weights(entry=entry, dest=tmp_path / entry.file)
    assert "\n" not in str(err.value) and "(ConnectionError; behind a proxy, set HTTPS_PROXY" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_the_probe_and_the_download_go_through_the_proxy(tmp_path, monkeypatch):
    """Only the proxy knows the way to weights.invalid: the proxy variables must be honoured."""
    with (
        FileServer({"/w/vgg16_notop.h5": FAKE}) as server,
        ConnectProxy({"weights.invalid:80": server.address}) as proxy,
    ):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        entry = fake_entry("http://weights.invalid/w/vgg16_notop.h5")
        check_fetchable([entry], tmp_path)  # the probe reaches it
        assert fetch_weights(entry=entry, dest=tmp_path / entry.file) == "downloaded"
    assert [line.rsplit(" ", 1)[0] for line in proxy.seen] == [
        "HEAD http://weights.invalid/",
        "GET http://weights.invalid/w/vgg16_notop.h5",
    ]
    assert (tmp_path / entry.file).read_bytes() == FAKE


def test_offline_without_the_file_stops_with_one_line_saying_which_file_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLDAG_OFFLINE", "1")
    entries = [row for row in TABLE_ROWS if row.backbone in ("VGG16", "Xception")]
    (tmp_path / entries[0].file).write_bytes(b"cached")  # Xception's file is there: only VGG16's is named
    with pytest.raises(AlldagError) as err:
        check_fetchable(entries, tmp_path)
    message = str(err.value)
    vgg16 = next(e for e in entries if e.backbone == "VGG16")
    assert "\n" not in message
    assert message.startswith(f"ImageNet weights are not in {tmp_path}/ and https://storage.googleapis.com cannot be")
    assert f"put {tmp_path / vgg16.file} (from {vgg16.url}) in place, downloaded on a machine with" in message
    assert "xception" not in message
    (tmp_path / vgg16.file).write_bytes(b"cached")
    check_fetchable(entries, tmp_path)  # every file cached: nothing to fetch, offline is fine


def test_pretrained_files_follow_train_weights_and_image_size(tmp_path):
    local = tmp_path / "mine.weights.h5"
    local.write_bytes(b"x")

    def train(weights="imagenet", image_size=224):
        return {"weights": weights, "image_size": image_size}

    files = pretrained_files(
        TABLE_ROWS,
        {
            "VGG16": train(),
            "MobileNet": train(image_size=128),  # Keras has a 128-px file
            "MobileNetV2": train(image_size=64),  # and falls back to its 224-px one
            "Xception": train(weights=None),
            "ResNet50": train(weights=str(local)),
        },
    )
    assert {b: e.file for b, e in files.items()} == {
        "VGG16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "MobileNet": "mobilenet_1_0_128_tf_no_top.h5",
        "MobileNetV2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    }
    with pytest.raises(AlldagError) as err:
        pretrained_files(TABLE_ROWS, {"VGG16": train(weights=str(tmp_path / "missing.h5"))})
    assert "\n" not in str(err.value) and "which is not a file" in str(err.value)
    with pytest.raises(AlldagError) as err:
        pretrained_files([], {"VGG16": train()})
    assert "no ImageNet weights file is known for backbone VGG16" in str(err.value)


def test_the_table_lists_every_backbone_once_per_file_and_reads_back_as_written():
    assert {row.backbone for row in TABLE_ROWS} == set(REGISTRY)
    assert len({row.file for row in TABLE_ROWS}) == len(TABLE_ROWS)
    assert format_weights_table(TABLE_ROWS) == (REPO / TABLE).read_text()


def _flat_source(module: str) -> str:
    """The source of keras.src.applications.<module> and of the application modules it builds on (resnet_v2
    on resnet), with adjacent string literals joined."""
    source = inspect.getsource(importlib.import_module(f"keras.src.applications.{module}"))
    for base in re.findall(r"^from keras\.src\.applications import (\w+)$", source, re.M):
        if base != "imagenet_utils":
            source += inspect.getsource(importlib.import_module(f"keras.src.applications.{base}"))
    return re.sub(r'"\s*\n\s*"', "", source)


@pytest.mark.parametrize("row", TABLE_ROWS, ids=lambda row: f"{row.backbone}-{row.image_size}")
def test_the_table_agrees_with_the_installed_keras_source(row):
    pytest.importorskip("keras")
    source = _flat_source(REGISTRY[row.backbone].module)
    assert row.url.rsplit("/", 1)[0] + "/" in source  # the folder Keras downloads from
    if row.file_hash:
        assert f'"{row.file_hash}"' in source
    else:  # Keras publishes no hash for MobileNet's and MobileNetV2's files
        assert REGISTRY[row.backbone].module in ("mobilenet", "mobilenet_v2") and "file_hash" not in source


@pytest.mark.parametrize("backbone, image_size", [("VGG16", 224), ("MobileNet", 128), ("MobileNet", 64)])
def test_the_table_names_the_file_keras_would_download(backbone, image_size):
    """What keras.applications itself asks get_file for (tools/imagenet_weights.py checks every backbone)."""
    pytest.importorskip("keras")
    sys.path.insert(0, str(REPO / "tools"))
    from imagenet_weights import keras_weights_file

    row = pretrained_files(TABLE_ROWS, {backbone: {"weights": "imagenet", "image_size": image_size}})[backbone]
    assert keras_weights_file(backbone, image_size) == (row.file, row.url, row.file_hash)


def test_a_cached_file_is_checked_before_training_and_named_in_its_lineage(tmp_path):
    path = tmp_path / "vgg16_notop.h5"
    path.write_bytes(FAKE)
    entry = fake_entry("http://weights.invalid/w/vgg16_notop.h5")
    check_cached(path, entry)
    assert weights_lineage(path) == {
        "weights_file": "vgg16_notop.h5",
        "weights_sha256": hashlib.sha256(FAKE).hexdigest(),
    }
    assert weights_lineage(None) == {}
    path.write_bytes(FAKE[:10])
    with pytest.raises(AlldagError) as err:
        check_cached(path, entry)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path} is not the ImageNet weights file of VGG16")


@pytest.mark.parametrize(
    "weights, extra, expected",
    [
        ("imagenet", {"weights_file": "resources/weights/vgg16_notop.h5"}, "resources/weights/vgg16_notop.h5"),
        ("mine.weights.h5", {}, "mine.weights.h5"),
        (None, {}, None),
        ("imagenet", {"architecture": "alldag.architectures:small_cnn"}, None),  # random init whatever weights says
    ],
)
def test_training_loads_the_rules_weights_input_or_the_local_file(schema_path, weights, extra, expected):
    from alldag.config import validate_config
    from alldag.train import settings_from_params

    train = {**validate_config({}, schema_path)["train"], "weights": weights}
    tracking = {"uri": "sqlite:///x.db", "experiment": "s", "artifact_root": "a", "parent_run_file": "p", "tags": {}}
    params = {"train": train, "classes": ["A", "B"], "seed": 1, "tracking": tracking, "task": "t", "backbone": "VGG16"}
    settings, _ = settings_from_params({**params, **extra})
    assert settings.weights == weights and settings.weights_file == expected


def test_train_settings_carry_how_the_job_runs_and_a_checkpoint_survives_changing_it(schema_path):
    import dataclasses

    import pandas as pd

    from alldag.config import validate_config
    from alldag.train import run_fingerprint, settings_from_params

    train = {**validate_config({}, schema_path)["train"], "checkpoint_minutes": 5, "mixed_precision": "off"}
    tracking = {"uri": "sqlite:///x.db", "experiment": "s", "artifact_root": "a", "parent_run_file": "p", "tags": {}}
    params = {"train": train, "classes": ["A", "B"], "seed": 1, "tracking": tracking, "task": "t", "backbone": "VGG16"}
    settings, _ = settings_from_params(params)
    assert (settings.checkpoint_minutes, settings.mixed_precision, settings.require_gpu) == (5, "off", False)
    rows = pd.DataFrame({"path": ["a.jpg"], "y": [0], "split": ["train"]})
    key = run_fingerprint(settings, rows, {})
    assert run_fingerprint(dataclasses.replace(settings, checkpoint_minutes=0, require_gpu=True), rows, {}) == key
    assert run_fingerprint(dataclasses.replace(settings, mixed_precision="on"), rows, {}) != key
