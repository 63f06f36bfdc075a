rule train:
    input:
        manifest=rules.split.output.manifest,
        augmentation=rules.augment.output.spec,
    output:
        model="results/models/{task}/{backbone}/model.keras",
        history="results/models/{task}/{backbone}/history.tsv",
        curves=report(
            "results/models/{task}/{backbone}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{task}",
            labels={"task": "{task}", "backbone": "{backbone}", "figure": "curves"},
        ),
        run="results/models/{task}/{backbone}/mlflow_run.json",
    log:
        "logs/train/{task}/{backbone}.log",
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=1,
    params:
        classes=task_classes,
        train=backbone_train_settings,
        seed=config["seed"],
        tracking=tracking_params(),
    script:
        "../scripts/train.py"
