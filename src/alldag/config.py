"""Config validation (schema with defaults), the offline demo overrides, and cross-key checks."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from alldag import AlldagError


def _schema(schema_path: str | os.PathLike) -> dict:
    with open(schema_path) as f:
        return yaml.safe_load(f)


def schema_error(config: dict, schema_path: str | os.PathLike) -> str | None:
    """One line describing the most relevant schema violation of config, or None if it is valid."""
    schema = _schema(schema_path)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    return (
        f"config error at {where}: {error.message} — fix your config file "
        f"(allowed keys and values: workflow/schemas/config.schema.yaml)"
    )


def validate_config(config: dict, schema_path: str | os.PathLike) -> dict:
    """Validate config in place against the schema and fill every default; raises AlldagError (one line)."""
    message = schema_error(config, schema_path)
    if message:
        raise AlldagError(message)
    from snakemake.utils import validate

    validate(config, str(schema_path), set_default=True)
    return config


def external_with_defaults(external: dict, schema_path: str | os.PathLike) -> dict:
    """The `external:` sets with the schema's defaults filled in (Snakemake's validate fills none below a map
    of user-named entries), including those of a `synthetic:` block."""
    entry = _schema(schema_path)["properties"]["external"]["additionalProperties"]["properties"]
    synthetic = {k: v["default"] for k, v in entry["synthetic"]["properties"].items()}
    out = {}
    for name, spec in external.items():
        filled = {k: v["default"] for k, v in entry.items() if "default" in v} | dict(spec)
        if filled.get("synthetic") is not None:
            filled["synthetic"] = synthetic | dict(filled["synthetic"])
        out[name] = filled
    return out


def deep_merge(base: dict, overrides: dict) -> dict:
    """A copy of base with overrides merged in, recursively for nested dicts."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else copy.deepcopy(value)
        )
    return out


def apply_demo(config: dict, schema_path: str | os.PathLike) -> dict:
    """Config with the demo overrides merged in, validated again."""
    demo = config.get("demo") or {}
    merged = deep_merge({k: v for k, v in config.items() if k != "demo"}, demo)
    # The demo's per-backbone settings only concern models this run actually trains.
    trained = trained_models(merged)
    merged["backbone_overrides"] = {b: o for b, o in merged.get("backbone_overrides", {}).items() if b in trained}
    merged["demo"] = demo
    message = schema_error(merged, schema_path)
    if message:
        raise AlldagError(f"in the demo overrides: {message}")
    return merged


def trained_models(config: dict) -> list[str]:
    """The models a config trains: its keras.applications backbones, then its custom architectures."""
    return list(config["backbones"]) + list(config.get("custom_models", {}))


def train_settings_for(config: dict, backbone: str) -> dict:
    """The `train` settings of one backbone: config['train'] with its backbone_overrides merged in."""
    return deep_merge(config["train"], config.get("backbone_overrides", {}).get(backbone, {}))


def check_backbone_overrides(config: dict, schema_path: str | os.PathLike) -> None:
    """Fail with one line if an override names a backbone not trained or an invalid train setting."""
    for backbone in config.get("backbone_overrides", {}):
        if backbone not in trained_models(config):
            raise AlldagError(
                f"backbone_overrides names '{backbone}', which is not in backbones or custom_models: "
                f"add it there or remove its override"
            )
        trial = {**config, "train": train_settings_for(config, backbone), "backbone_overrides": {}}
        message = schema_error(trial, schema_path)
        if message:
            raise AlldagError(f"in backbone_overrides.{backbone}: {message}")


def found_from(rule_file, workflow_dir) -> Path:
    """A file the config names (a custom model's rule file, the checksum manifest): as given when absolute or
    found from the working directory, else from the workflow folder (where the shipped ones live)."""
    path = Path(rule_file)
    return path if path.is_absolute() or path.is_file() else Path(workflow_dir) / path


def check_custom_models(custom_models: dict, workflow_dir) -> None:
    """Fail with one line if a custom model's name is taken or its rule file is missing."""
    from alldag.backbones import REGISTRY
    from alldag.names import BASELINE_NAME

    for name, rule_file in custom_models.items():
        if name in REGISTRY or name == BASELINE_NAME:
            raise AlldagError(
                f"custom_models names '{name}', which is a built-in model: give your architecture another name"
            )
        if not found_from(rule_file, workflow_dir).is_file():
            raise AlldagError(
                f"custom_models.{name}: rule file {rule_file} not found (relative paths are looked up from the "
                f"working directory, then from the workflow folder {workflow_dir})"
            )


def booleans_from_cli(config: dict, schema_path: str | os.PathLike) -> dict:
    """Turn 'true'/'false' strings into booleans wherever the schema wants a boolean, in place.

    Snakemake reads nested --config values (and a profile's `config:` entries) with YAML's BaseLoader,
    so `--config train='{require_gpu: true}'` arrives as the string 'true'.
    """
    import yaml

    def walk(node: dict, schema: dict) -> None:
        for key, sub in schema.get("properties", {}).items():
            if key not in node:
                continue
            if sub.get("type") == "boolean" and str(node[key]).lower() in ("true", "false"):
                node[key] = str(node[key]).lower() == "true"
            elif sub.get("type") == "object" and isinstance(node[key], dict):
                walk(node[key], sub)

    walk(config, yaml.safe_load(Path(schema_path).read_text()))
    return config
