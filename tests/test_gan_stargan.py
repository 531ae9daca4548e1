"""StarGAN G/D match yunjey/stargan model.py key for key, and normalise per instance at inference."""
import pytest
import torch

from fer_utils.gan.stargan import HEADS, Discriminator, Generator, warp

# yunjey/stargan G, conv_dim 64, c_dim 7, repeat_num 6 (docs/generators.md): conv weights ...
G_CONVS = {
    "main.0.weight": [64, 10, 7, 7],
    "main.3.weight": [128, 64, 4, 4],
    "main.6.weight": [256, 128, 4, 4],
    **{f"main.{k}.main.{j}.weight": [256, 256, 3, 3] for k in range(9, 15) for j in (0, 3)},
    "main.15.weight": [256, 128, 4, 4],  # ConvTranspose2d layout [in, out, kh, kw]
    "main.18.weight": [128, 64, 4, 4],
    "main.21.weight": [3, 64, 7, 7],
}
# ... and InstanceNorm2d(affine=True, track_running_stats=True) prefixes with their width
G_NORMS = {"main.1": 64, "main.4": 128, "main.7": 256, "main.16": 128, "main.19": 64,
           **{f"main.{k}.main.{j}": 256 for k in range(9, 15) for j in (1, 4)}}
NORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# D, image_size 256, c_dim 7
D_KEYS = {
    "main.0.weight": [64, 3, 4, 4], "main.0.bias": [64],
    "main.2.weight": [128, 64, 4, 4], "main.2.bias": [128],
    "main.4.weight": [256, 128, 4, 4], "main.4.bias": [256],
    "main.6.weight": [512, 256, 4, 4], "main.6.bias": [512],
    "main.8.weight": [1024, 512, 4, 4], "main.8.bias": [1024],
    "main.10.weight": [2048, 1024, 4, 4], "main.10.bias": [2048],
    "conv1.weight": [1, 2048, 3, 3], "conv2.weight": [7, 2048, 4, 4],
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_generator_keys_and_shapes_match_yunjey():
    expected = dict(G_CONVS)
    for prefix, width in G_NORMS.items():
        expected.update({f"{prefix}.{k}": ([] if k == "num_batches_tracked" else [width]) for k in NORM_KEYS})
    got = {k: list(v.shape) for k, v in Generator(64, 7, 6).state_dict().items()}
    assert len(got) == 103
    assert got == expected


def test_discriminator_keys_and_shapes_match_yunjey():
    got = {k: list(v.shape) for k, v in Discriminator(256, 64, 7, 6).state_dict().items()}
    assert got == D_KEYS


@pytest.mark.parametrize("module, expected", [
    (lambda: Generator(c_dim=7), 8_436_800),
    (lambda: Generator(c_dim=5), 8_430_528),
    (lambda: Discriminator(256, c_dim=7), 44_950_464),
    (lambda: Discriminator(128, c_dim=5), 44_762_048),
])
def test_parameter_counts_match_the_documented_figures(module, expected):
    assert n_params(module()) == expected


def test_label_planes_follow_rgb_and_output_is_tanh():
    G = Generator(conv_dim=8, c_dim=3, repeat_num=1)
    x = torch.rand(2, 3, 16, 16) * 2 - 1  # (N, 3, H, W)
    c_trg = torch.eye(3)[[0, 2]]
    y = G(x, c_trg)
    assert y.shape == (2, 3, 16, 16) and y.abs().max() <= 1
    # the first conv sees [x, c planes]: zeroing its label input weights removes the label effect
    with torch.no_grad():
        G.main[0].weight[:, 3:] = 0
    assert torch.allclose(G(x, c_trg), G(x, torch.eye(3)[[1, 1]]))


def test_inference_uses_instance_statistics_like_the_original_solver():
    torch.manual_seed(0)
    G = Generator(conv_dim=8, c_dim=2, repeat_num=1)
    x, c = torch.rand(2, 3, 16, 16), torch.eye(2)
    G.train()
    y_train = G(x, c)  # per-instance statistics (what yunjey's solver uses: it never calls eval)
    assert G.main[1].running_mean.abs().sum() > 0  # training still updates the running buffers
    G.eval()
    for module in G.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            module.running_mean.fill_(5.0)  # eval must ignore the running buffers
    assert torch.allclose(G(x, c), y_train, atol=1e-6)


def test_discriminator_outputs_patch_and_class_logits():
    D = Discriminator(image_size=32, conv_dim=4, c_dim=7, repeat_num=4)
    out_src, out_cls = D(torch.rand(3, 3, 32, 32))
    assert out_src.shape == (3, 1, 2, 2) and out_cls.shape == (3, 7)


# ---------------------------------------------------------------- the warp head (gan.stargan_head)

TINY = dict(conv_dim=8, c_dim=3, repeat_num=1)


def _faces(n: int = 2, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.rand(n, 3, size, size) * 2 - 1, torch.eye(3)[:n]


@pytest.mark.parametrize("head", HEADS)
def test_each_head_translates_to_images_of_the_input_size(head):
    x, c = _faces()
    out, residual = Generator(**TINY, head=head).translate(x, c)
    assert out.shape == x.shape and out.abs().max() <= 1
    assert residual is None if head == "image" else residual.shape == x.shape


def test_a_fresh_warp_head_is_the_identity_whatever_its_trunk():
    x, c = _faces()
    G = Generator(**TINY, head="warp")  # random trunk, zero head
    assert torch.allclose(G(x, c), x, atol=1e-5)


def test_flow_and_residual_stay_within_their_bounds():
    G = Generator(**TINY, head="warp", max_shift=0.05, residual_bound=0.1)
    torch.nn.init.normal_(G.warp.weight, std=10.0)  # saturate the head
    flow, residual = G.flow_and_residual(torch.rand(2, 8, 16, 16))
    assert 0.04 < flow.abs().max() <= 0.05 and 0.09 < residual.abs().max() <= 0.1


def test_a_uniform_flow_moves_the_image():
    x, _ = _faces(1)
    flow = torch.zeros(1, 16, 16, 2)
    flow[..., 0] = 2 / 16  # one pixel in [-1, 1] coordinates: each output pixel samples its right neighbour
    assert torch.allclose(warp(x, flow)[..., :-1], x[..., 1:], atol=1e-5)


def test_an_unknown_head_is_refused():
    with pytest.raises(ValueError, match="unknown StarGAN generator head 'paint'; choose one of image, warp"):
        Generator(**TINY, head="paint")


def test_a_warp_head_starts_on_an_image_heads_trunk():
    image, G = Generator(**TINY), Generator(**TINY, head="warp")
    G.load_trunk(image.state_dict())
    trunk = {k: v for k, v in G.state_dict().items() if k != "warp.weight"}
    assert trunk and all(torch.equal(v, image.state_dict()[k]) for k, v in trunk.items())
    assert not G.warp.weight.any()


@pytest.mark.parametrize("source, match", [
    (lambda: Generator(**TINY, head="warp"), r"lacks \['main\.\d+\.weight'\] and has \['warp\.weight'\]"),
    (lambda: Generator(**{**TINY, "repeat_num": 2}), "not an image-head generator's state"),
])
def test_load_trunk_refuses_what_is_not_an_image_trunk_of_its_size(source, match):
    G = Generator(**TINY, head="warp")
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        G.load_trunk(source().state_dict())
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # nothing half-loaded
