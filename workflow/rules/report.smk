rule report:
    input:
        provenance=rules.download.output.provenance,
        manifests=expand(
            "results/split/{task}/fold{fold}/split_manifest.tsv",
            task=TASKS,
            fold=FOLDS,
        ),
        audit=rules.audit.output.summary,
        leakage=expand(rules.check_leakage.output.report, task=TASKS),
        augmentation=expand(rules.augment.output.spec, task=TASKS),
        previews=expand(rules.augment.output.preview, task=TASKS),
        metrics=model_outputs("metrics"),
        history=model_outputs("history"),
        curves=model_outputs("curves"),
        confusion=model_outputs("confusion"),
        roc=model_outputs("roc"),
        explanation=model_outputs("explanation"),
        explanation_summary=model_outputs("explanation_summary"),
        run=model_outputs("run"),
        reliability=model_outputs("reliability"),
        comparison=expand(rules.compare.output.comparison, task=TASKS),
        paired=expand(rules.compare.output.paired, task=TASKS),
        comparison_figure=expand(rules.compare.output.figure, task=TASKS),
    output:
        report="results/report.html",
        table="results/results_table.tsv",
        summary="results/results_summary.tsv",
    log:
        "logs/report.log",
    conda:
        "../../envs/report.yaml"
    params:
        tasks=TASKS,
        backbones=BACKBONES,
        folds=FOLDS,
        train=config["train"],
        seed=config["seed"],
        bootstrap=config["evaluate"]["bootstrap_samples"],
    script:
        "../scripts/report.py"
