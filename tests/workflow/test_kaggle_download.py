"""The Kaggle path for real: kagglehub against a local stub of Kaggle's API (kagglesdk's TEST endpoint,
http://localhost:7777), and the reachability probe through a local HTTP CONNECT proxy."""

from __future__ import annotations

import io
import json
import shutil
import socket
import ssl
import subprocess
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from alldag import AlldagError
from alldag.download import KAGGLE_HANDLE, kaggle_download, kaggle_reachable, resolve_source
from alldag.synthetic import generate_dataset
from conftest import checksum_manifest
from net_stubs import PROXY_VARS, ConnectProxy, KaggleStub
from workflow_helpers import snakemake, write_config

COUNTS = {"Benign": 4, "Early": 2, "Pre": 2, "Pro": 4}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[bytes, Path]:
    """A zip of synthetic images in the dataset's layout (Original/ and Segmented/ at the top, as Kaggle
    serves mehradaria/leukemia) and a checksum manifest made for it."""
    root = tmp_path_factory.mktemp("kaggle") / "ALL"
    generate_dataset(root, COUNTS, seed=4)
    manifest = root.parent / "manifest.tsv"
    checksum_manifest(root).to_csv(manifest, sep="\t", index=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue(), manifest


def _kaggle_env(tmp_path: Path) -> dict:
    """kagglehub pointed at the stub, with its own cache, no credentials and no proxy."""
    return {
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub"),
        "KAGGLE_CONFIG_DIR": str(tmp_path / "no-kaggle-config"),
        "ALLDAG_OFFLINE": "0",
        "NO_PROXY": "localhost,127.0.0.1",
        "no_proxy": "localhost,127.0.0.1",
    }


@pytest.fixture
def kaggle_env(tmp_path, monkeypatch) -> dict:
    env = _kaggle_env(tmp_path)
    for var in PROXY_VARS + ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _run_download(workdir: Path, manifest: Path, env: dict, target="results/data/images.tsv"):
    cfg = {
        "data": {"source": "kaggle", "manifest": str(manifest)},
        "split": {"folds": 1},
        "tasks": {"benign_vs_pro": ["Benign", "Pro"]},
    }
    unset = {var: "" for var in PROXY_VARS if var.lower() != "no_proxy"}
    return snakemake(
        workdir, "--cores", "1", target, config=write_config(workdir, cfg), env={**unset, **env}, timeout=600
    )


def test_kaggle_source_downloads_unpacks_verifies_and_reuses_the_cache(tmp_path, archive, kaggle_env):
    data, manifest = archive
    with KaggleStub(data) as stub:
        proc = _run_download(tmp_path, manifest, kaggle_env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert stub.names() == ["GetDataset", "DownloadDataset"]
        assert stub.calls[1][1] == {"ownerSlug": "mehradaria", "datasetSlug": "leukemia", "datasetVersionNumber": 2}
        prov = json.loads((tmp_path / "results/data/dataset.json").read_text())
        cached = tmp_path / "kagglehub/datasets/mehradaria/leukemia/versions/2"
        assert prov["source"] == "kaggle" and prov["synthetic"] is False and prov["demo"] is False
        assert prov["root"] == str(cached.resolve())
        assert prov["counts"] == COUNTS
        assert prov["verification"] == {"ok": 2 * sum(COUNTS.values())}  # Original/ and Segmented/
        images = pd.read_csv(tmp_path / "results/data/images.tsv", sep="\t")
        assert len(images) == sum(COUNTS.values())
        assert not list(cached.parent.glob("*.archive"))  # unpacked, archive removed

        shutil.rmtree(tmp_path / "results")  # a second run asks for the version only: the cache is reused
        proc = _run_download(tmp_path, manifest, kaggle_env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert stub.names() == ["GetDataset", "DownloadDataset", "GetDataset"]
        assert json.loads((tmp_path / "results/data/dataset.json").read_text())["verification"] == {"ok": 24}


def test_kaggle_refusal_fails_the_download_job_with_one_line(tmp_path, archive, kaggle_env):
    data, manifest = archive
    with KaggleStub(data) as stub:
        stub.mode = "401"
        proc = _run_download(tmp_path, manifest, kaggle_env, target="results/data/dataset.tsv")
    assert proc.returncode != 0
    log = (tmp_path / "logs/download.log").read_text()
    errors = [line for line in log.splitlines() if "ERROR alldag:" in line]
    assert len(errors) == 1, log[-3000:]
    assert "Kaggle refused to send dataset 'mehradaria/leukemia' (HTTP 401)" in errors[0]
    assert not (tmp_path / "results/data/dataset.tsv").exists()


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("401", "Kaggle refused to send dataset 'mehradaria/leukemia' (HTTP 401): put your Kaggle API token in"),
        ("404", "Kaggle has no dataset 'mehradaria/leukemia' (HTTP 404): check the handle"),
        (
            "truncated",
            "the download of Kaggle dataset 'mehradaria/leukemia' is incomplete or corrupt (ValueError: "
            "Unsupported archive type.): rerun to download it again",
        ),
    ],
)
def test_kaggle_failures_are_one_line(archive, kaggle_env, mode, expected):
    with KaggleStub(archive[0]) as stub:
        stub.mode = mode
        with pytest.raises(AlldagError) as err:
            kaggle_download(KAGGLE_HANDLE)
    message = str(err.value)
    assert "\n" not in message and message.startswith(expected), message
    assert message.endswith("set data.source: local, data.local_dir: <folder holding Original/>")


def test_a_truncated_download_is_fetched_again_on_the_next_run(archive, kaggle_env):
    with KaggleStub(archive[0]) as stub:
        stub.mode = "truncated"
        with pytest.raises(AlldagError):
            kaggle_download(KAGGLE_HANDLE)
        stub.mode = "ok"
        root = kaggle_download(KAGGLE_HANDLE)
    assert sorted(p.name for p in (root / "Original").iterdir()) == sorted(COUNTS)
    assert stub.names().count("DownloadDataset") == 2


# --- the probe honours the proxy settings (it uses requests, as kagglehub does) -------------------------------


@pytest.fixture(scope="module")
def fake_kaggle_tls(tmp_path_factory):
    """An HTTPS server posing as api.kaggle.com (self-signed certificate), reachable only through the proxy."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=api.kaggle.com",
            "-addext",
            "subjectAltName=DNS:api.kaggle.com",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.send_response(404)  # any answer means Kaggle is there
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield ("127.0.0.1", server.server_address[1]), cert
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_proxy_env(monkeypatch):
    for var in PROXY_VARS + ("KAGGLE_API_ENVIRONMENT", "ALLDAG_OFFLINE"):
        monkeypatch.delenv(var, raising=False)


def test_probe_reaches_kaggle_through_https_proxy(fake_kaggle_tls, monkeypatch, no_proxy_env):
    """Only the proxy knows the way to api.kaggle.com: the probe must use it, and `auto` then picks Kaggle."""
    address, cert = fake_kaggle_tls
    with ConnectProxy({"api.kaggle.com:443": address}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert kaggle_reachable(5.0) is True
        assert resolve_source("auto", None).kind == "kaggle"
    assert [line.rsplit(" ", 1)[0] for line in proxy.seen] == ["CONNECT api.kaggle.com:443"] * 2, proxy.seen


def test_probe_skips_the_proxy_for_no_proxy_hosts(fake_kaggle_tls, monkeypatch, no_proxy_env):
    with ConnectProxy({"api.kaggle.com:443": fake_kaggle_tls[0]}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "kaggle.com")
        kaggle_reachable(1.0)
    assert proxy.seen == []


def test_probe_says_unreachable_when_the_proxy_cannot_connect(monkeypatch, no_proxy_env):
    with socket.create_server(("127.0.0.1", 0)) as spare:
        closed = spare.getsockname()[1]  # nobody listens there once this socket is closed
    with ConnectProxy({"api.kaggle.com:443": ("127.0.0.1", closed)}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        assert kaggle_reachable(5.0) is False
        with pytest.raises(AlldagError) as err:
            resolve_source("kaggle", None)
    assert [line.rsplit(" ", 1)[0] for line in proxy.seen] == ["CONNECT api.kaggle.com:443"] * 2, proxy.seen
    assert "https://api.kaggle.com cannot be reached (behind a proxy, set HTTPS_PROXY)" in str(err.value)


def test_offline_switch_skips_the_probe(monkeypatch, no_proxy_env):
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("ALLDAG_OFFLINE", "1")
        assert kaggle_reachable() is False
    assert proxy.seen == []
