"""StyleGAN2 G / D match NVlabs/stylegan2-ada-pytorch names and shapes; truncation, mixing, resampling."""
import pytest
import torch

from fer_utils.gan import stylegan2
from fer_utils.gan.stylegan2 import Discriminator, Generator, conv2d_resample, setup_filter, upfirdn2d

# a tiny config: z = w = 32, c_dim 3, 32 px, channel_base 256, channel_max 64, 2 mapping layers
TINY = dict(z_dim=32, c_dim=3, w_dim=32, img_resolution=32, img_channels=3,
            mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=64))


def expected_g_keys(z, c, w, res, base, cmax, n_map):
    """The G_ema naming rule of docs/generators.md, written out independently of the model code."""
    C = lambda r: min(base // r, cmax)  # noqa: E731
    keys = {"synthesis.b4.const": [C(4), 4, 4], "synthesis.b4.resample_filter": [4, 4]}

    def layer(p, i, o, r):
        keys.update({f"{p}.weight": [o, i, 3, 3], f"{p}.noise_strength": [], f"{p}.bias": [o],
                     f"{p}.resample_filter": [4, 4], f"{p}.noise_const": [r, r],
                     f"{p}.affine.weight": [i, w], f"{p}.affine.bias": [i]})

    def torgb(p, i):
        keys.update({f"{p}.weight": [3, i, 1, 1], f"{p}.bias": [3], f"{p}.affine.weight": [i, w],
                     f"{p}.affine.bias": [i]})

    layer("synthesis.b4.conv1", C(4), C(4), 4)
    torgb("synthesis.b4.torgb", C(4))
    r = 8
    while r <= res:
        keys[f"synthesis.b{r}.resample_filter"] = [4, 4]
        layer(f"synthesis.b{r}.conv0", C(r // 2), C(r), r)
        layer(f"synthesis.b{r}.conv1", C(r), C(r), r)
        torgb(f"synthesis.b{r}.torgb", C(r))
        r *= 2
    keys["mapping.w_avg"] = [w]
    if c:
        keys.update({"mapping.embed.weight": [w, c], "mapping.embed.bias": [w]})
    for i in range(n_map):
        keys.update({f"mapping.fc{i}.weight": [w, (z + (w if c else 0)) if i == 0 else w], f"mapping.fc{i}.bias": [w]})
    return keys


def shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_tiny_generator_follows_the_naming_rule():
    G = Generator(**TINY)
    expected = expected_g_keys(32, 3, 32, 32, 256, 64, 2)
    assert shapes(G) == expected
    assert list(G.state_dict())[:2] == ["synthesis.b4.const", "synthesis.b4.resample_filter"]  # synthesis first
    assert G.num_ws == 2 * 5 - 2


@pytest.mark.parametrize("res, base, n_map, n_keys, n_params", [
    (64, 32768, 8, 106, 27_032_600),
    (64, 32768, 2, 94, 25_456_664),
    (64, 16384, 8, 106, 23_819_544),
    (256, 16384, 8, 144, 24_767_458),
    (64, 16384, 2, 94, 22_243_608),
])
def test_full_size_generators_have_the_documented_keys_and_parameter_counts(res, base, n_map, n_keys, n_params):
    G = Generator(512, 0, 512, res, 3, mapping_kwargs=dict(num_layers=n_map),
                  synthesis_kwargs=dict(channel_base=base, channel_max=512))
    assert shapes(G) == expected_g_keys(512, 0, 512, res, base, 512, n_map)
    assert len(G.state_dict()) == n_keys
    assert sum(p.numel() for p in G.parameters()) == n_params


def test_documented_channel_base_16384_shapes_at_64px():
    G = Generator(512, 0, 512, 64, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=16384))
    got = shapes(G)
    assert got["synthesis.b64.conv0.weight"] == [256, 512, 3, 3]
    assert got["synthesis.b64.conv0.affine.weight"] == [512, 512]
    assert got["synthesis.b64.conv1.affine.weight"] == [256, 512]
    assert got["synthesis.b64.torgb.weight"] == [3, 256, 1, 1]


def test_discriminator_64_matches_the_documented_resnet_keys():
    D = Discriminator(c_dim=0, img_resolution=64)
    got = shapes(D)
    assert len(got) == 46 and sum(v.numel() for v in D.state_dict().values()) == 26_489_121
    assert got["b64.fromrgb.weight"] == [512, 3, 1, 1] and "b32.fromrgb.weight" not in got
    assert got["b8.skip.weight"] == [512, 512, 1, 1] and "b8.skip.bias" not in got
    assert got["b4.conv.weight"] == [512, 513, 3, 3] and got["b4.fc.weight"] == [512, 8192]
    assert got["b4.out.weight"] == [1, 512]


def test_generator_and_conditional_discriminator_run():
    torch.manual_seed(0)
    G, D = Generator(**TINY), Discriminator(c_dim=3, img_resolution=32, channel_base=256, channel_max=64)
    c = torch.eye(3)[[0, 1, 2, 0]]
    img = G(torch.randn(4, 32), c)  # (N, 3, 32, 32)
    assert img.shape == (4, 3, 32, 32) and torch.isfinite(img).all()
    assert D(img, c).shape == (4, 1)
    assert "mapping.w_avg" not in D.state_dict() and "mapping.embed.weight" in D.state_dict()


def test_truncation_psi_zero_gives_the_average_face_and_const_noise_is_deterministic():
    torch.manual_seed(0)
    G = Generator(**TINY).eval()
    G.mapping.w_avg.normal_()
    c = torch.eye(3)[[1, 1]]
    a = G(torch.randn(2, 32), c, truncation_psi=0.0, noise_mode="const")
    assert torch.allclose(a[0], a[1], atol=1e-5)
    z = torch.randn(2, 32)
    assert torch.equal(G(z, c, noise_mode="const"), G(z, c, noise_mode="const"))


def test_mapping_tracks_w_avg_in_training_and_style_mixing_keeps_early_layers():
    torch.manual_seed(0)
    G = Generator(**TINY).train()
    c = torch.eye(3)[[0, 1]]
    ws = G.mapping(torch.randn(2, 32), c)  # (N, num_ws, w_dim)
    assert G.mapping.w_avg.abs().sum() > 0
    mixed = G.mix_styles(ws, c, style_mixing_prob=1.0)
    assert torch.equal(mixed[:, 0], ws[:, 0]) and not torch.equal(mixed[:, -1], ws[:, -1])
    assert torch.equal(G.mix_styles(ws, c, style_mixing_prob=0.0), ws)


def test_fast_upsampling_conv_equals_the_generic_path():
    """conv_transpose + FIR == zero-insert + FIR (pad 3,2) + correlation with the flipped kernel (NVlabs slow path)."""
    torch.manual_seed(0)
    x, w, f = torch.randn(2, 4, 5, 5), torch.randn(6, 4, 3, 3), setup_filter()
    fast = conv2d_resample(x, w, f, up=2, padding=1)
    slow = torch.nn.functional.conv2d(upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4), w.flip([2, 3]))
    assert fast.shape == (2, 6, 10, 10)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_fir_resampling_preserves_a_constant_image():
    f = setup_filter()
    x = torch.ones(1, 2, 8, 8)
    assert torch.allclose(stylegan2.upsample2d(x, f)[..., 2:-2, 2:-2], torch.ones(1, 2, 12, 12))
    down = conv2d_resample(x, torch.ones(2, 2, 1, 1) / 2, f, down=2)  # 1x1 conv, FIR then stride 2
    assert down.shape == (1, 2, 4, 4) and torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2))


def _fill(module):
    torch.manual_seed(0)
    state = module.state_dict()
    for key, value in state.items():
        if "resample_filter" not in key:
            value.copy_(torch.randn(value.shape) * 0.5)
    module.load_state_dict(state)
    return module.eval()


def test_outputs_match_numbers_computed_with_the_nvlabs_reference_code():
    """Numbers printed once by NVlabs/stylegan2-ada-pytorch@d72cc7d networks.py (CPU reference ops), same weights."""
    G = _fill(Generator(8, 2, 8, 8, 3, mapping_kwargs=dict(num_layers=2),
                        synthesis_kwargs=dict(channel_base=64, channel_max=16)))
    torch.manual_seed(1)
    z, c = torch.randn(2, 8), torch.eye(2)
    img = G(z, c, truncation_psi=0.7, noise_mode="const")
    assert img.sum().item() == pytest.approx(59.57817077636719, rel=1e-5)
    assert img[0, :, 0, :3].flatten().tolist() == pytest.approx(
        [-0.4511476, -0.5625721, -1.0804586, 0.5561384, 0.4847778, 0.6763464, 0.2510293, 0.1842021, 0.3921421],
        abs=1e-5)
    assert img[1, 2, -1, -3:].tolist() == pytest.approx([0.3855388, 0.2783286, 0.1542036], abs=1e-5)
    D = _fill(Discriminator(c_dim=2, img_resolution=8, channel_base=64, channel_max=16))
    torch.manual_seed(2)
    x = torch.randn(4, 3, 8, 8) * 2
    assert D(x, torch.eye(2)[[0, 1, 0, 1]]).flatten().tolist() == pytest.approx(
        [-0.0023024343, -0.0022208854, -0.0023159722, -0.0022371979], rel=1e-4)
