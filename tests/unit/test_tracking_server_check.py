"""alldag.tracking's server check: fast, one line, no credentials in URIs."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from alldag import AlldagError
from alldag.tracking import check_server
from slurm_cluster import free_port


class _LoginRequired(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_local_stores_are_not_probed(monkeypatch):
    probed = []

    class Answer:
        def close(self):
            pass

    monkeypatch.setattr("urllib.request.urlopen", lambda url, **kwargs: probed.append(url) or Answer())
    for uri in ("sqlite:////nonexistent/mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns"):
        check_server(uri)
    check_server("http://127.0.0.1:9/probed")  # a server is probed (here, by the stand-in)
    assert probed == ["http://127.0.0.1:9/probed/health"]


def test_unreachable_server_fails_fast_with_one_line():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(AlldagError) as exc:
        check_server(uri)
    assert time.monotonic() - start < 6
    message = str(exc.value)
    assert "\n" not in message and message.startswith(f"MLflow server {uri} is unreachable")
    assert "mlflow server --host 127.0.0.1" in message and "sqlite:///" in message


def test_a_server_that_asks_for_a_login_is_reachable():
    server = HTTPServer(("127.0.0.1", 0), _LoginRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_server(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


def test_ending_the_parent_run_after_the_server_went_away_fails_in_one_probe(tmp_path):
    """The invocation's start found the server up (check_server caches that answer); when it ends the server is
    gone: marking the parent run fails with the one-line error at once, not after MLflow's HTTP retries."""
    from alldag.tracking import end_parent_run

    server = HTTPServer(("127.0.0.1", 0), _LoginRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_port}"
    check_server(uri)  # onstart: up
    server.shutdown()
    server.server_close()
    run_file = tmp_path / "parent_run.json"
    run_file.write_text(json.dumps({"run_id": "0" * 32}))
    with pytest.raises(AlldagError, match="is unreachable"):  # the probe's line, not MLflow's after its retries
        end_parent_run(uri, run_file, "FAILED")


def test_credentials_in_the_uri_are_refused():
    with pytest.raises(AlldagError, match="MLFLOW_TRACKING_PASSWORD"):
        check_server("http://alice:hunter2@127.0.0.1:5000")


def test_a_child_run_found_again_moves_to_the_current_parent_and_keeps_the_earlier_ones(tmp_path):
    """The track job finds its record's run (made by an earlier, interrupted attempt) and moves it under the
    parent run of the invocation it runs in."""
    import mlflow

    from alldag.track import find_or_create_run
    from alldag.tracking import PARENT_TAG, PREVIOUS_PARENTS_TAG, Tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("study", artifact_location=str(tmp_path / "art"))  # not ./mlruns
    first, second, third = (client.create_run(experiment).info.run_id for _ in range(3))
    parent_file = tmp_path / "parent.json"
    tracking = Tracking(uri, "study", str(tmp_path / "art"), str(parent_file), {})
    record = {"name": "t/model/fold0", "record": "r", "tags": {}}
    parent_file.write_text(json.dumps({"run_id": first}))
    child, created = find_or_create_run(client, tracking, record)
    assert created
    for parent in (second, third, third):  # the last: the same invocation again
        parent_file.write_text(json.dumps({"run_id": parent}))
        assert find_or_create_run(client, tracking, record) == (child, False)
    tags = client.get_run(child).data.tags
    assert tags[PARENT_TAG] == third
    assert tags[PREVIOUS_PARENTS_TAG] == f"{first},{second}"


def test_a_parent_run_left_running_by_an_earlier_invocation_is_marked_killed_at_the_next_start(tmp_path):
    import mlflow

    from alldag.tracking import ENDED_BY_TAG, close_stale_parent_run, end_parent_run, start_parent_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_file = tmp_path / "parent_run.json"
    assert close_stale_parent_run(uri, run_file) is None  # no earlier invocation
    stale = start_parent_run(uri, "study", tmp_path / "art", run_file, {})  # then killed: never ended
    assert close_stale_parent_run(uri, run_file) == stale
    run = mlflow.MlflowClient(uri).get_run(stale)
    assert run.info.status == "KILLED"
    assert "still RUNNING" in run.data.tags[ENDED_BY_TAG]
    ended = start_parent_run(uri, "study", tmp_path / "art", run_file, {})
    end_parent_run(uri, run_file, "FINISHED")
    assert close_stale_parent_run(uri, run_file) is None  # an invocation that ended keeps its status
    run = mlflow.MlflowClient(uri).get_run(ended)
    assert run.info.status == "FINISHED" and ENDED_BY_TAG not in run.data.tags
    run_file.write_text(json.dumps({"run_id": "0" * 32, "tracking_uri": uri}))
    assert close_stale_parent_run(uri, run_file) is None  # a run this store does not have (a reset store)


def test_closing_the_parent_run_with_the_server_gone_only_warns(tmp_path, capsys):
    from alldag.tracking import close_parent_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_file = tmp_path / "parent_run.json"
    assert close_parent_run("http://127.0.0.1:9", run_file, "FAILED")  # no run file: nothing to mark
    run_file.write_text(json.dumps({"run_id": "0" * 32, "tracking_uri": uri}))
    assert not close_parent_run("http://127.0.0.1:9", run_file, "FAILED")  # port 9: nothing listens
    assert "WARNING: parent run not marked FAILED" in capsys.readouterr().err
