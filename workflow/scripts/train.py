from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.train import TrainOutputs, settings_from_params, train_model

out, params = snakemake.output, dict(snakemake.params)
settings, tracking = settings_from_params(
    {**params, **dict(snakemake.wildcards), "weights_file": snakemake.input.get("weights")}
)


def build_model():
    """A custom architecture (rules with params.architecture) instead of a keras.applications backbone."""
    from alldag.architectures import load_builder

    return load_builder(params["architecture"])(len(settings.classes), settings.image_size, settings)


run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: train_model(
        settings=settings,
        manifest=snakemake.input.manifest,
        augmentation=snakemake.input.augmentation,
        tracking=tracking,
        outputs=named_files(TrainOutputs, out),
        build_model=build_model if "architecture" in params else None,
        pretrained=params.get("pretrained"),
    ),
)
