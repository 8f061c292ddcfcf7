"""The wiring of SkipNet against a forward pass written out from DIP's ``skip()`` (models/skip.py).

Parameter counts (tests/test_dip.py) cannot see a wrong concatenation order, a BatchNorm in the wrong
place or a missing upsampling: those have the same counts. Here the network's own weights are pushed
through a reference written with ``torch.nn.functional`` from the DIP code's description, op by op:

    level i:  s = act(BN(conv1x1(x)))                                   (skip branch, if ns_i > 0)
              d = act(BN(conv_kd(x, stride 2))); d = act(BN(conv_kd(d)))
              d = level_{i+1}(d) (if not the deepest); d = upsample×2(d)
              y = BN(concat(s, d))                                       (DIP's Concat(1, skip, deeper))
              y = act(BN(conv_ku(y))); y = act(BN(conv1x1(y)))          (need1x1_up)
    output:   sigmoid(conv1x1(level_0(z)))

with reflection padding, LeakyReLU(0.2), bilinear upsampling (align_corners=False) and BatchNorm on the
batch's own statistics (training mode, as DIP trains).
"""
import torch
import torch.nn.functional as F

from dipcourse.networks import SkipNet, make_input


def conv(x, sequential, stride=1):
    """Apply one of SkipNet's (pad, conv) pairs by hand: reflection padding by (k−1)/2, then conv2d."""
    layer = sequential[-1]
    half = (layer.kernel_size[0] - 1) // 2
    if half:
        x = F.pad(x, (half,) * 4, mode="reflect")
    return F.conv2d(x, layer.weight, layer.bias, stride=stride)


def bn(x, norm):
    return F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)


def act(x):
    return F.leaky_relu(x, 0.2)


def reference_level(level, x):
    s = act(bn(conv(x, level.skip[0]), level.skip[1])) if level.skip is not None else None
    d = act(bn(conv(x, level.down[0], stride=2), level.down[1]))
    d = act(bn(conv(d, level.down[3]), level.down[4]))
    if level.inner is not None:
        d = reference_level(level.inner, d)
    d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
    y = torch.cat([s, d], dim=1) if s is not None else d
    y = bn(y, level.up[0])
    y = act(bn(conv(y, level.up[1]), level.up[2]))
    return act(bn(conv(y, level.up[4]), level.up[5]))


def test_skipnet_is_wired_as_dips_skip():
    torch.manual_seed(0)
    net = SkipNet(in_channels=5, out_channels=3, nd=[6, 8, 10], nu=[7, 9, 11], ns=[2, 0, 3]).train()
    z = make_input(5, 32, 32, seed=1)
    expected = torch.sigmoid(conv(reference_level(net.levels, z), net.head[0]))
    torch.testing.assert_close(net(z), expected, rtol=1e-5, atol=1e-6)


def test_the_reference_tells_wirings_apart():
    """The comparison above has teeth: the same weights with the skip and deeper halves of the concat
    swapped give another output."""
    torch.manual_seed(0)
    net = SkipNet(in_channels=4, out_channels=3, nd=[6, 6], ns=[3, 3]).train()
    z = make_input(4, 16, 16, seed=2)
    level = net.levels
    original = level.forward

    def swapped(x):
        deeper = level.upsample(level.inner(level.down(x)))
        return level.up(torch.cat([deeper, level.skip(x)], dim=1))

    level.forward = swapped
    try:
        wrong = net(z)
    finally:
        level.forward = original
    right = torch.sigmoid(conv(reference_level(net.levels, z), net.head[0]))
    assert (wrong - right).abs().max() > 1e-3
