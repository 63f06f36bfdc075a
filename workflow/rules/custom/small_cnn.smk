# A new architecture is rule train with another builder. For your own: copy this file, put your
# model's name in the rule name and in wildcard_constraints, and point params.architecture at your
# builder ("module:function" or "path/to/file.py:function"; see src/alldag/architectures.py).
# Then name it in the config:  custom_models: {SmallCNN: workflow/rules/custom/small_cnn.smk}
# It trains through rule train's script with its `train` settings and backbone_overrides.SmallCNN,
# into the same output paths, so evaluate, explain, compare and the report pick it up.


use rule train as train_small_cnn with:
    wildcard_constraints:
        backbone="SmallCNN",
    params:
        architecture="alldag.architectures:small_cnn",
