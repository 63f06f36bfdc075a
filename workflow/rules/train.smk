# The training rule of every keras.applications backbone; a new architecture inherits it
# (`use rule train as ... with:`, see workflow/rules/custom/small_cnn.smk).
rule train:
    input:
        # the backbone's ImageNet weights file, fetched by rule fetch_weights (train.weights: imagenet)
        unpack(pretrained_weights),
        manifest=SPLIT_MANIFEST,
        augmentation=rules.augment.output.spec,
        leakage=rules.check_leakage.output.report,
    output:
        model=f"{MODEL_DIR}/model.keras",
        history=f"{MODEL_DIR}/history.tsv",
        curves=model_figure(
            f"{MODEL_DIR}/training_curves.png",
            "training_curves.rst",
            "Training",
            "curves",
        ),
        run=f"{MODEL_DIR}/{RUN_JSON}",
    log:
        f"logs/train/{MODEL_FOLD}.log",
    wildcard_constraints:
        backbone="|".join(PLAN.backbones),
    # Training is the long pole: once its inputs are ready, it goes before lighter jobs.
    priority: 1
    conda:
        train_env()
    resources:
        gpu=1,
    params:
        classes=task_classes,
        train=backbone_train_settings,
        pretrained=pretrained_entry,
        seed=config["seed"],
        tracking=PLAN.tracking,
    script:
        workflow_script("train.py")
