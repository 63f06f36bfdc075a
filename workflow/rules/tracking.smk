# MLflow: a parent run per pipeline invocation (only when jobs run); training jobs attach child runs.


# Snakemake keeps one onstart handler: it also checks, first, that the pretrained weights can be had.
onstart:
    check_weights_before_jobs()
    from alldag.tracking import (
        check_server,
        close_stale_parent_run,
        resolve_tracking_uri,
        start_parent_run,
    )

    t = tracking_params()
    uri = resolve_tracking_uri(t["uri"], ".")
    try:  # an unreachable tracking server stops the run here, before any job or file changes
        check_server(uri)
        stale = close_stale_parent_run(uri, PARENT_RUN_FILE)
        Path(PARENT_RUN_FILE).unlink(missing_ok=True)
        run_id = start_parent_run(
            uri,
            t["experiment"],
            t["artifact_root"],
            PARENT_RUN_FILE,
            t["tags"],
        )
    except AlldagError as exc:
        fail(exc)
    if stale:
        print(
            f"MLflow parent run {stale} of an earlier invocation was still RUNNING: marked KILLED",
            file=sys.stderr,
        )
    print(
        f"MLflow parent run {run_id} in experiment '{t['experiment']}'",
        file=sys.stderr,
    )


onsuccess:
    close_parent_run("FINISHED")


onerror:
    write_partial_report()
    close_parent_run("FAILED")
