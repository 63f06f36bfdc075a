# A new architecture in one rule file: copy it, rename the rule, the model name in the paths and
# params.backbone, and point params.architecture at your builder ("module:function" or
# "path/to/file.py:function"; see src/alldag/architectures.py). Then add one config line:
#   custom_models: {SmallCNN: workflow/rules/custom/small_cnn.smk}
# The outputs are those of rule train, so evaluate, explain, compare and the report pick it up.


rule train_small_cnn:
    input:
        manifest="results/split/{task}/fold{fold}/split_manifest.tsv",
        augmentation=rules.augment.output.spec,
        leakage=rules.check_leakage.output.report,
    output:
        model="results/models/{task}/SmallCNN/fold{fold}/model.keras",
        history="results/models/{task}/SmallCNN/fold{fold}/history.tsv",
        curves=report(
            "results/models/{task}/SmallCNN/fold{fold}/training_curves.png",
            caption="../../report/training_curves.rst",
            category="Training",
            subcategory="SmallCNN",
            labels={
                "task": "{task}",
                "backbone": "SmallCNN",
                "fold": "{fold}",
                "figure": "curves",
            },
        ),
        run="results/models/{task}/SmallCNN/fold{fold}/mlflow_run.json",
    log:
        "logs/train/{task}/SmallCNN/fold{fold}.log",
    conda:
        train_env()
    resources:
        gpu=1,
    params:
        backbone="SmallCNN",
        architecture="alldag.architectures:small_cnn",
        classes=task_classes,
        train=config["train"],
        seed=config["seed"],
        tracking=tracking_params(),
    script:
        "../../scripts/train.py"
