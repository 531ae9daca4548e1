"""The quality check's judge: a Table-1 CNN trained on real (world AffectNet-like) faces, kept and reused.

It reads StarGAN's translations as expressions (transfer) and gives the feature space of the Frechet
distance. Kept in ``results_dir/gan/judge.*`` with a record of its recipe and a hash of its faces, and
reused while both are the same.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from torch import nn

from ..config import Config
from ..emotions import EMOTIONS
from ..engine import ArraySplit, fit, predict, raise_failures
from ..identity import identity, kept_record, write_record
from ..models.io import load_model, save_model
from ..preprocess import load_database
from ..runtime import data_hash, resolve_device, resolve_precision, seed_everything
from .measures import subsample


def expression_cnn(cfg: Config) -> tuple[nn.Module, dict[str, Any], dict[str, np.ndarray]]:
    """Table-1 CNN trained on world AffectNet-like gray faces (training list); its facts; train/val faces.

    Its budget is ``generate.judge_epochs`` (the train recipe's early stopping on the validation
    list applies) and ``generate.judge_faces`` training faces (0 = the whole training list).
    The CNN is kept in ``results_dir/gan/judge.*`` and reused while its identity (recipe, faces, the
    classifier's code) is the same, so judging other generators costs minutes, not its ~40 min of training again.
    """
    epochs, max_train = cfg.generate.judge_epochs, cfg.generate.judge_faces
    faces = load_database(cfg, "affectnet")
    split = np.array([row["split"] for row in faces.manifest])
    train_idx = np.flatnonzero(split == "train")
    train_idx = subsample(train_idx, max_train or len(train_idx), cfg.train.seed)
    train = ArraySplit(faces.images[train_idx], faces.labels[train_idx])
    val = ArraySplit(faces.images[split == "val"], faces.labels[split == "val"])
    real = {"train": faces.images[split == "train"], "val": val.images, "val_labels": val.labels}
    tc = dataclasses.replace(cfg.train, epochs=epochs)
    device = resolve_device(cfg.device)
    params = {"model": "cnn", "train": dataclasses.asdict(tc) | {"precision": resolve_precision(tc.precision, device)},
              "faces_requested": max_train}
    ident = identity("classifier", {"train+val": data_hash({"train": train, "val": val})}, params)
    path = cfg.path(cfg.results_dir) / "gan" / "judge.json"
    saved = kept_record(path, ident)
    if saved is not None:
        print(f"judging CNN: {path.with_suffix('.safetensors')} (trained earlier on the same faces and recipe)")
        info = saved["info"] | {"precision_setting": cfg.train.precision}  # same resolution, maybe named otherwise
        return load_model(path.with_suffix(".safetensors")), info, real
    seed_everything(cfg.train.seed)
    result = fit("cnn", train, val, tc, device, seeds=(cfg.train.seed,), progress=False)[0]
    raise_failures("the quality check's judging CNN", [result])  # a diverged judge would read every face as chance
    hit = predict(result.model, val.images).argmax(1) == val.labels
    info = {"train_faces": len(train.labels), "faces_requested": max_train, "val_faces": len(val.labels),
            "epochs": epochs, "best_epoch": result.best_epoch, "precision_setting": cfg.train.precision,
            "precision": result.precision, "val_accuracy_real": float(hit.mean()),
            "val_accuracy_real_per_class": {name: float(hit[val.labels == k].mean())
                                            for k, name in enumerate(EMOTIONS) if (val.labels == k).any()}}
    save_model(result.model, "cnn", path.with_suffix(".safetensors"))
    write_record(path, {"params": params, "info": info}, ident)  # after the weights, pinning them
    return result.model, info, real
