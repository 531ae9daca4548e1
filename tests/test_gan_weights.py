"""Weight files: safetensors round trip, yunjey .ckpt import, StyleGAN2-ADA .pkl import without executing code;
every unusable file (missing, truncated, garbage, foreign, another architecture) is a WeightsError naming it."""
import collections
import copy
import os
import pickle
import re
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fer_utils.config import WeightsError, load_config
from fer_utils.gan import shipped, stargan, stylegan2
from fer_utils.gan.weights import (
    load_stargan_ckpt,
    load_stylegan2_pkl,
    load_weights,
    read_metadata,
    read_network_pkl,
    save_weights,
)

TINY_G = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
              mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=32))
TINY_STARGAN = dict(conv_dim=8, c_dim=7, repeat_num=2)
TINY_WARP = {**TINY_STARGAN, "head": "warp", "max_shift": 0.05, "residual_bound": 0.1}


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.allclose(sa[k].double(), sb[k].double(), atol=atol, rtol=atol), k


# ---------------------------------------------------------------- safetensors

@pytest.mark.parametrize("build, config", [
    (stargan.Generator, TINY_STARGAN),
    (stargan.Generator, TINY_WARP),
    (stargan.Discriminator, dict(image_size=32, conv_dim=4, c_dim=7, repeat_num=4)),
    (stylegan2.Generator, TINY_G),
    (stylegan2.Discriminator, dict(c_dim=2, img_resolution=16, channel_base=128, channel_max=32)),
])
@pytest.mark.parametrize("fp16", [False, True])
def test_safetensors_round_trip(tmp_path, build, config, fp16):
    torch.manual_seed(0)
    net = build(**config)
    path = save_weights(net, tmp_path / "net.safetensors", config, provenance={"source": "test"}, fp16=fp16)
    meta = read_metadata(path)
    assert meta["config"] == config and meta["provenance"] == {"source": "test"} and meta["fp16"] is fp16
    assert_same_state(load_weights(path), net, atol=2e-3 if fp16 else 0.0)
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]  # atomic: no temporary left


def test_fp16_file_is_about_half_the_size(tmp_path):
    net = stargan.Generator(**TINY_STARGAN)
    full = save_weights(net, tmp_path / "a.safetensors", TINY_STARGAN).stat().st_size
    half = save_weights(net, tmp_path / "b.safetensors", TINY_STARGAN, fp16=True).stat().st_size
    assert half < 0.6 * full


def test_loaded_stylegan2_generator_renders_the_same_images(tmp_path):
    torch.manual_seed(0)
    G = stylegan2.Generator(**TINY_G).eval()
    G2 = load_weights(save_weights(G, tmp_path / "g.safetensors", G.config()))
    z = torch.randn(2, 16)
    assert torch.equal(G(z, None, truncation_psi=0.7, noise_mode="const"),
                       G2(z, None, truncation_psi=0.7, noise_mode="const"))


LOADERS = {
    "safetensors": lambda path: load_weights(path),
    "metadata": lambda path: read_metadata(path),
    "ckpt": lambda path: load_stargan_ckpt(path, stargan.Generator(**TINY_STARGAN)),
    "pkl": lambda path: load_stylegan2_pkl(path),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_a_missing_file_is_a_weights_error_naming_it(tmp_path, loader):
    with pytest.raises(WeightsError, match=r"not found: .*nope\.bin \(check the path"):
        LOADERS[loader](tmp_path / "nope.bin")


def _damaged(tmp_path, loader: str, damage: str):
    """A file for ``loader``, written whole and then damaged: truncated, emptied, garbage or a Git LFS pointer."""
    path = tmp_path / f"w.{'safetensors' if loader == 'metadata' else loader}"
    if loader in ("safetensors", "metadata"):
        save_weights(stargan.Generator(**TINY_STARGAN), path, TINY_STARGAN)
    elif loader == "ckpt":
        torch.save(stargan.Generator(**TINY_STARGAN).state_dict(), path)
    else:
        path.write_bytes(pickle.dumps({"G_ema": {"weights": list(range(1000))}}))
    whole = path.read_bytes()
    path.write_bytes({"truncated": whole[: len(whole) // 2], "empty": b"", "garbage": bytes(range(256)) * 4,
                      "lfs pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"}[damage])
    return path


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "lfs pointer"])
@pytest.mark.parametrize("loader", LOADERS)
def test_a_damaged_file_is_a_weights_error_naming_it_and_what_to_do(tmp_path, loader, damage):
    path = _damaged(tmp_path, loader, damage)
    advice = {"safetensors": "git lfs pull", "metadata": "git lfs pull", "ckpt": "downloaded completely",
              "pkl": "network-snapshot"}[loader]
    with pytest.raises(WeightsError, match=rf"{re.escape(str(path))}: not a readable .*; .*{advice}") as info:
        LOADERS[loader](path)
    assert "\n" not in str(info.value)  # the command line prints it as one line
    assert "weights_only` set to `False`" not in str(info.value)  # never advise running pickled code


def test_safetensors_of_another_writer_is_refused(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=r"other\.safetensors: no usable 'fer_utils' metadata"):
        load_weights(tmp_path / "other.safetensors")


def test_safetensors_whose_config_does_not_build_its_network_is_refused(tmp_path):
    path = save_weights(stargan.Generator(**TINY_STARGAN), tmp_path / "g.safetensors", {**TINY_STARGAN, "bogus": 1})
    with pytest.raises(WeightsError, match=r"g\.safetensors: its stored config .*does not build a stargan\.Generator"):
        load_weights(path)


def test_a_saved_warp_head_generator_translates_as_before(tmp_path):
    torch.manual_seed(0)
    G = stargan.Generator(**TINY_WARP)
    torch.nn.init.normal_(G.warp.weight, std=0.1)  # a trained head moves the face
    x, c = torch.rand(2, 3, 16, 16) * 2 - 1, torch.eye(7)[:2]
    loaded = load_weights(save_weights(G, tmp_path / "g.safetensors", TINY_WARP))
    assert loaded.head_kind == "warp" and loaded.max_shift == 0.05 and loaded.residual_bound == 0.1
    assert torch.equal(loaded(x, c), G.eval()(x, c)) and not torch.allclose(G(x, c), x, atol=1e-3)


@pytest.mark.parametrize("net, config, match", [
    (stargan.Generator(**TINY_STARGAN), {**TINY_STARGAN, "head": "paint"},
     r"does not build a stargan\.Generator \(ValueError: unknown StarGAN generator head 'paint'"),
    (stargan.Generator(**TINY_STARGAN), TINY_WARP, r"its tensors do not fit a Generator .*warp\.weight"),
    (stargan.Generator(**TINY_WARP), TINY_STARGAN, r"its tensors do not fit a Generator .*warp\.weight"),
])
def test_a_generator_whose_stored_head_is_unknown_or_not_its_own_is_refused(tmp_path, net, config, match):
    path = save_weights(net, tmp_path / "g.safetensors", config)
    with pytest.raises(WeightsError, match=rf"g\.safetensors: .*{match}"):
        load_weights(path)


def test_safetensors_whose_tensors_do_not_fit_its_config_are_refused(tmp_path):
    path = save_weights(stargan.Generator(**TINY_STARGAN), tmp_path / "g.safetensors", {**TINY_STARGAN, "conv_dim": 4})
    with pytest.raises(WeightsError, match=r"g\.safetensors: its tensors do not fit a Generator .*main\.0\.weight"):
        load_weights(path)


# ---------------------------------------------------------------- yunjey .ckpt

@pytest.mark.parametrize("zip_container", [True, False])  # torch >= 1.6 zip, or the legacy stream of 2018 files
def test_yunjey_ckpt_round_trip(tmp_path, zip_container):
    torch.manual_seed(0)
    G, D = stargan.Generator(**TINY_STARGAN), stargan.Discriminator(32, 4, 7, 4)
    torch.save(G.state_dict(), tmp_path / "200000-G.ckpt", _use_new_zipfile_serialization=zip_container)
    torch.save(D.state_dict(), tmp_path / "200000-D.ckpt", _use_new_zipfile_serialization=zip_container)
    assert_same_state(load_stargan_ckpt(tmp_path / "200000-G.ckpt", stargan.Generator(**TINY_STARGAN)), G)
    assert_same_state(load_stargan_ckpt(tmp_path / "200000-D.ckpt", stargan.Discriminator(32, 4, 7, 4)), D)


def test_pytorch_040_ckpt_without_num_batches_tracked_loads(tmp_path):
    G = stargan.Generator(**TINY_STARGAN)
    state = {k: v for k, v in G.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "1-G.ckpt")
    load_stargan_ckpt(tmp_path / "1-G.ckpt", stargan.Generator(**TINY_STARGAN))


def test_ckpt_with_wrong_c_dim_fails_loudly(tmp_path):
    torch.save(stargan.Generator(**TINY_STARGAN).state_dict(), tmp_path / "1-G.ckpt")
    with pytest.raises(WeightsError, match=r"1-G\.ckpt: its tensors do not fit .*main\.0\.weight.*conv_dim=8, c_dim=5"):
        load_stargan_ckpt(tmp_path / "1-G.ckpt", stargan.Generator(conv_dim=8, c_dim=5, repeat_num=2))


@pytest.mark.parametrize("content", [[1, 2, 3], {"G": {"main.0.weight": torch.zeros(1)}, "step": 3}],
                         ids=["a list", "a training checkpoint"])
def test_ckpt_that_is_not_a_state_dict_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "1-G.ckpt")
    with pytest.raises(WeightsError, match=r"1-G\.ckpt: holds a (list|dict) that is not a state dict"):
        load_stargan_ckpt(tmp_path / "1-G.ckpt", stargan.Generator(**TINY_STARGAN))


# ---------------------------------------------------------------- StyleGAN2-ADA .pkl

class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec"])
def test_malicious_pickle_is_refused_without_side_effect(tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = (_Evil(os.system, f"touch {marker}") if kind == "os.system"
               else _Evil(exec, f"open({str(marker)!r}, 'w').write('x')"))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": payload}))
    with pytest.raises(WeightsError, match=r"evil\.pkl: .*refused global ((posix|os|nt)\.system|builtins\.exec)"):
        load_stylegan2_pkl(path)
    assert not marker.exists()


def _fake_nvlabs_modules():
    """Fake ``torch_utils.persistence`` and ``dnnlib.util`` so the test can write an official-style pickle."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: loading must not import this module
        raise AssertionError("the real persistence code must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util", "__qualname__": "EasyDict"})
    modules = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
               "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    return modules, persistence, util.EasyDict


MODULE_SRC = "import os\nos.system('touch /tmp/fer_utils_module_src_ran')\n"  # must never be executed


class _Persistent:
    """Pickles like a ``@persistence.persistent_class`` instance (persistence.py ``_version = 6``)."""

    def __init__(self, reconstruct, module, class_name, init_kwargs):
        self.reconstruct, self.class_name = reconstruct, class_name
        self.state = dict(module.__dict__)
        self.state["_modules"] = collections.OrderedDict(
            (k, _Persistent(reconstruct, v, type(v).__name__, {})) for k, v in module._modules.items())
        self.state.update(_init_args=(), _init_kwargs=init_kwargs, extra_gain=np.float64(0.5))

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=MODULE_SRC, class_name=self.class_name, state=self.state)
        return self.reconstruct, (meta,)


@pytest.mark.parametrize("protocol", [3, 4])
def test_official_structure_pickle_loads_into_our_generator(tmp_path, monkeypatch, protocol):
    torch.manual_seed(0)
    G_ema = copy.deepcopy(stylegan2.Generator(**TINY_G)).eval().requires_grad_(False)
    G_ema.mapping.w_avg.normal_()
    D = stylegan2.Discriminator(img_resolution=16, channel_base=128, channel_max=32).eval().requires_grad_(False)
    modules, persistence, EasyDict = _fake_nvlabs_modules()
    with monkeypatch.context() as m:
        for name, module in modules.items():
            m.setitem(sys.modules, name, module)
        rec = persistence._reconstruct_persistent_obj
        kwargs = EasyDict(TINY_G, mapping_kwargs=EasyDict(num_layers=2),
                          synthesis_kwargs=EasyDict(channel_base=128, channel_max=32, num_fp16_res=0, conv_clamp=None,
                                                    architecture="skip"))
        snapshot = {"G": _Persistent(rec, G_ema, "Generator", kwargs), "D": _Persistent(rec, D, "Discriminator", {}),
                    "G_ema": _Persistent(rec, G_ema, "Generator", kwargs), "augment_pipe": None,
                    "training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset", path="faces.zip",
                                                    use_labels=False, max_size=16, xflip=False, resolution=16)}
        (tmp_path / "network-snapshot-000000.pkl").write_bytes(pickle.dumps(snapshot, protocol=protocol))
    assert "torch_utils.persistence" not in sys.modules and "dnnlib.util" not in sys.modules
    path = tmp_path / "network-snapshot-000000.pkl"
    assert read_network_pkl(path)["training_set_kwargs"]["resolution"] == 16
    G = load_stylegan2_pkl(path)
    assert_same_state(G, G_ema)
    assert not os.path.exists("/tmp/fer_utils_module_src_ran")
    z = torch.randn(2, 16)
    assert torch.equal(G(z, None, noise_mode="const"), G_ema(z, None, noise_mode="const"))


def test_pickle_with_unsupported_architecture_is_rejected(tmp_path, monkeypatch):
    modules, persistence, EasyDict = _fake_nvlabs_modules()
    G = stylegan2.Generator(**TINY_G)
    with monkeypatch.context() as m:
        for name, module in modules.items():
            m.setitem(sys.modules, name, module)
        kwargs = dict(TINY_G, synthesis_kwargs=dict(channel_base=128, channel_max=32, architecture="resnet"))
        stub = _Persistent(persistence._reconstruct_persistent_obj, G, "Generator", kwargs)
        (tmp_path / "g.pkl").write_bytes(pickle.dumps({"G_ema": stub}))
    with pytest.raises(WeightsError, match=r"g\.pkl: .*not a StyleGAN2 generator we can rebuild .*architecture"):
        load_stylegan2_pkl(tmp_path / "g.pkl")


@pytest.mark.parametrize("init_kwargs, match", [({}, "init kwargs lack c_dim, img_channels"),
                                                (dict(TINY_G, z_dim="16"), "does not build"),
                                                (dict(TINY_G, w_dim=8), "tensors do not fit")])
def test_pickle_whose_generator_cannot_be_rebuilt_is_refused(tmp_path, monkeypatch, init_kwargs, match):
    modules, persistence, _ = _fake_nvlabs_modules()
    with monkeypatch.context() as m:
        for name, module in modules.items():
            m.setitem(sys.modules, name, module)
        stub = _Persistent(persistence._reconstruct_persistent_obj, stylegan2.Generator(**TINY_G), "Generator",
                           init_kwargs)  # module_src and a state, as NVlabs writes them
        (tmp_path / "g.pkl").write_bytes(pickle.dumps({"G_ema": stub}))
    with pytest.raises(WeightsError, match=rf"g\.pkl: .*{match}"):
        load_stylegan2_pkl(tmp_path / "g.pkl")
    assert not os.path.exists("/tmp/fer_utils_module_src_ran")


# ---------------------------------------------------------------- the settings that name weights

@pytest.mark.parametrize("model, name", [("stargan", "G.safetensors"), ("stargan", "200000-G.ckpt"),
                                         ("stylegan2", "G.safetensors"), ("stylegan2", "network-snapshot.pkl")])
def test_generate_weights_settings_turn_a_damaged_file_into_a_weights_error(tmp_path, model, name):
    (tmp_path / name).write_bytes(b"")  # an interrupted download
    cfg = load_config("quick", {f"generate.{model}_weights": str(tmp_path / name)})
    path = re.escape(str(tmp_path / name))
    with pytest.raises(WeightsError, match=rf"generate\.{model}_weights: cannot load {path}: "):
        shipped.load_generator(cfg, model)
