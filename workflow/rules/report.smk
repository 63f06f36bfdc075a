rule report:
    input:
        unpack(report_inputs),
    output:
        **REPORT_OUTPUTS,
    log:
        "logs/report.log",
    conda:
        "../../envs/report.yaml"
    params:
        inputs=report_table(),
        config=config,
        parent_run_file=PARENT_RUN_FILE,
    script:
        "../scripts/report.py"
