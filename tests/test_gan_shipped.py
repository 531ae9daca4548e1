"""The generators shipped in fer_utils/gan/weights: present, small, fp16, documented, and they make faces."""
import json

import numpy as np
import torch
from safetensors import safe_open

from fer_utils.config import load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.gan.pipeline import latents, load_pipeline
from fer_utils.gan.shipped import DATABASES, PROVENANCE, SHIPPED, WEIGHTS_DIR

BUDGET_BYTES = 40_000_000  # all shipped weights together


def test_shipped_weights_are_small_fp16_and_have_provenance():
    assert sum(path.stat().st_size for path in WEIGHTS_DIR.glob("*.safetensors")) <= BUDGET_BYTES  # with D
    provenance = json.loads(PROVENANCE.read_text())
    for model, path in SHIPPED.items():
        with safe_open(str(path), framework="pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys()}
        assert torch.float16 in dtypes and torch.float32 not in dtypes, f"{path.name}: not stored as fp16"
        entry = provenance[path.name]
        assert entry["model"] == model and entry["data"]["database"] == DATABASES[model]
        assert entry["iterations"] == entry["config"]["num_iters"], f"{path.name}: training did not finish"
        assert entry["seconds_total"] > 0 and entry["versions"]  # training time (a ship after the run adds none)
        quality = entry["quality"]  # measured by `python -m fer_utils quality --ship`
        assert {"expression_transfer", "identity_kept", "diversity", "frechet_cnn"} <= set(quality)
        assert set(quality["data"]) == {"affectnet", "affectnet_heldout", "ffhq"}  # the faces it was measured on


def test_shipped_generators_make_distinct_faces_in_six_expressions():
    pipe, _ = load_pipeline(load_config("quick", {"device": "cpu"}))
    sources, expressions, _ = pipe(latents(0, 0, 3, pipe.stylegan2.z_dim))
    assert sources.shape == (3, pipe.size, pipe.size, 3) and expressions.shape == (3, len(EMOTIONS), *sources.shape[1:])
    flat = sources.reshape(3, -1).astype(np.float32)
    assert min(np.abs(flat[i] - flat[j]).mean() for i in range(3) for j in range(i + 1, 3)) > 5  # gray levels
    assert np.abs(expressions[:, 0].astype(np.float32) - expressions[:, 3]).mean() > 1  # angry is not happy


def test_init_shipped_carries_the_shipped_stargan_discriminator_on_the_default_preset():
    from fer_utils.gan.trainer import initial_networks, stargan_config
    networks, _ = initial_networks(SHIPPED["stargan"], "stargan", stargan_config(load_config("default")))
    assert sorted(networks) == ["D", "G"]  # --init shipped goes on without a fresh discriminator


def test_the_default_preset_holds_the_shipped_stargans_last_run_settings():
    """params/default.yaml says its gan settings are the shipped StarGAN's last run: `train-gan stargan --init
    shipped` on it goes on as that run did (the schedule, stargan_iters and the save step, is each run's own)."""
    entry = json.loads(PROVENANCE.read_text())[SHIPPED["stargan"].name]
    schedule = {"stargan_iters", "stargan_model_save_step"}
    stylegan2 = {key for key in entry["gan"] if key.startswith("stylegan2_") or key == "r1_gamma"}
    preset = vars(load_config("default").gan)
    differ = {key: (entry["gan"][key], preset[key]) for key in set(entry["gan"]) - schedule - stylegan2
              if entry["gan"][key] != preset[key]}
    assert not differ, f"shipped StarGAN's last run vs params/default.yaml: {differ}"
