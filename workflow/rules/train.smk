rule train:
    input:
        manifest="results/split/{task}/fold{fold}/split_manifest.tsv",
        augmentation=rules.augment.output.spec,
        leakage=rules.check_leakage.output.report,
    output:
        model="results/models/{task}/{backbone}/fold{fold}/model.keras",
        history="results/models/{task}/{backbone}/fold{fold}/history.tsv",
        curves=report(
            "results/models/{task}/{backbone}/fold{fold}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{backbone}",
            labels={
                "task": "{task}",
                "backbone": "{backbone}",
                "fold": "{fold}",
                "figure": "curves",
            },
        ),
        run="results/models/{task}/{backbone}/fold{fold}/mlflow_run.json",
    log:
        "logs/train/{task}/{backbone}/fold{fold}.log",
    wildcard_constraints:
        backbone="|".join(BACKBONES),
    conda:
        train_env()
    resources:
        gpu=1,
    params:
        classes=task_classes,
        train=backbone_train_settings,
        seed=config["seed"],
        tracking=tracking_params(),
    script:
        "../scripts/train.py"
