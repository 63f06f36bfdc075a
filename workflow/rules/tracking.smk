# MLflow: a parent run per pipeline invocation (only when jobs run); track jobs make and write the child runs.


# Snakemake keeps one onstart handler: it also checks, first, that the pretrained weights can be had.
onstart:
    check_weights_before_jobs()
    from alldag.tracking import (
        check_server,
        close_stale_parent_run,
        resolve_tracking_uri,
        start_parent_run,
    )

    t = PLAN.tracking
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


def write_partial_report():
    """With --keep-going, a failed job still gets a report (alldag.report.write_partial_report)."""
    if workflow.execution_settings.keep_going:
        from alldag.report import write_partial_report as write

        outputs, parent = REPORT_OUTPUTS, PARENT_RUN_FILE
        write(
            rows=report_table(), config=config, outputs=outputs, parent_run_file=parent
        )


def close_parent_run(status):
    """Mark this invocation's parent run (alldag.tracking.close_parent_run)."""
    from alldag.tracking import close_parent_run as close, resolve_tracking_uri

    close(resolve_tracking_uri(PLAN.tracking["uri"], "."), PARENT_RUN_FILE, status)


onsuccess:
    close_parent_run("FINISHED")


onerror:
    write_partial_report()
    close_parent_run("FAILED")
