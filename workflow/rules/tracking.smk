# MLflow: a parent run per pipeline invocation (only when jobs run); training jobs attach child runs.


onstart:
    from alldag.tracking import resolve_tracking_uri, start_parent_run

    Path(PARENT_RUN_FILE).unlink(missing_ok=True)
    t = tracking_params()
    run_id = start_parent_run(
        resolve_tracking_uri(t["uri"], "."),
        t["experiment"],
        t["artifact_root"],
        PARENT_RUN_FILE,
        t["tags"],
    )
    print(
        f"MLflow parent run {run_id} in experiment '{t['experiment']}'",
        file=sys.stderr,
    )


onsuccess:
    from alldag.tracking import end_parent_run, resolve_tracking_uri

    end_parent_run(
        resolve_tracking_uri(config["mlflow"]["tracking_uri"], "."),
        PARENT_RUN_FILE,
        "FINISHED",
    )


onerror:
    from alldag.tracking import end_parent_run, resolve_tracking_uri

    write_partial_report()
    end_parent_run(
        resolve_tracking_uri(config["mlflow"]["tracking_uri"], "."),
        PARENT_RUN_FILE,
        "FAILED",
    )
