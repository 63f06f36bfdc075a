rule report:
    input:
        provenance=rules.download.output.provenance,
        manifests=expand(rules.split.output.manifest, task=TASKS),
        augmentation=expand(rules.augment.output.spec, task=TASKS),
        previews=expand(rules.augment.output.preview, task=TASKS),
        metrics=model_outputs("metrics"),
        history=model_outputs("history"),
        curves=model_outputs("curves"),
        confusion=model_outputs("confusion"),
        roc=model_outputs("roc"),
        explanation=model_outputs("explanation"),
        agreement=model_outputs("agreement"),
        run=model_outputs("run"),
    output:
        report="results/report.html",
        table="results/results_table.tsv",
    log:
        "logs/report.log",
    conda:
        "../../envs/report.yaml"
    params:
        tasks=TASKS,
        backbones=BACKBONES,
        train=config["train"],
        seed=config["seed"],
    script:
        "../scripts/report.py"
