"""The claims of chapter 3 (Shapes, layouts and the initial state), and the shape table of rnnlib.explain.shapes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import NumpyRNN, TorchRNN
from rnnlib.explain.examples import ARTICLE_SEED, article_input
from rnnlib.explain.gradient_flow import power_norms
from rnnlib.explain.shapes import ShapeRow, expected_shapes, format_shape_table, run_three, shape_table
from rnnlib.training.init import spectral_radius

# The article's batch-first tensor, written literally as the article does ((batch, seq_len, input)).
ARTICLE_BATCH_FIRST_LITERAL = [
    [[0.1, 0.2, 0.3], [0.7, 0.8, 0.9], [1.3, 1.4, 1.5], [1.9, 2.0, 2.1]],
    [[0.4, 0.5, 0.6], [1.0, 1.1, 1.2], [1.6, 1.7, 1.8], [2.2, 2.3, 2.4]],
]
# The article's printed batch-first "output example" and hn (invented values), verbatim.
ARTICLE_PRINTED_OUTPUT_BF = [
    [
        [0.1234, 0.5678, 0.9101, 0.1121, 0.3141],
        [0.4252, 0.6272, 0.8292, 0.0313, 0.2333],
        [0.4454, 0.6474, 0.8494, 0.0515, 0.2535],
        [0.4656, 0.6676, 0.8696, 0.0717, 0.2737],
    ],
    [
        [0.4151, 0.6171, 0.8191, 0.0212, 0.2232],
        [0.4353, 0.6373, 0.8393, 0.0414, 0.2434],
        [0.4555, 0.6575, 0.8595, 0.0616, 0.2636],
        [0.4757, 0.6777, 0.8797, 0.0818, 0.2838],
    ],
]
ARTICLE_PRINTED_HN_BF = [
    [[0.4656, 0.6676, 0.8696, 0.0717, 0.2737], [0.4757, 0.6777, 0.8797, 0.0818, 0.2838]],
    [[0.4858, 0.6878, 0.8898, 0.0919, 0.2939], [0.4959, 0.6979, 0.8999, 0.1020, 0.3040]],
]


def article_model(dtype=torch.float32, **flags):
    torch.manual_seed(ARTICLE_SEED)
    return nn.RNN(3, 5, 2, **flags).to(dtype)


class RNNWithLearnedH0(nn.Module):
    """The chapter's module: h0 is an (L, 1, H) parameter expanded to the batch."""

    def __init__(self, input_size, hidden_size, num_layers):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, num_layers)
        self.h0 = nn.Parameter(torch.zeros(num_layers, 1, hidden_size))

    def forward(self, x):
        return self.rnn(x, self.h0.expand(-1, x.shape[1], -1))


# -- batch_first ------------------------------------------------------------------------


def test_article_batch_first_tensor_is_transpose_of_time_major():
    x_bf = torch.tensor(ARTICLE_BATCH_FIRST_LITERAL)
    x_tm = torch.from_numpy(article_input())
    assert torch.equal(x_bf, x_tm.transpose(0, 1))
    assert torch.equal(x_bf, torch.from_numpy(article_input(batch_first=True)))


def test_batch_first_does_not_change_weights():
    tm, bf = article_model(), article_model(batch_first=True)
    assert all(torch.equal(a, b) for a, b in zip(tm.state_dict().values(), bf.state_dict().values(), strict=True))


def test_batch_first_outputs_are_transposes_and_hn_identical():
    x_tm = torch.from_numpy(article_input())
    h0 = torch.zeros(2, 2, 5)
    with torch.no_grad():
        out_tm, hn_tm = article_model()(x_tm, h0)
        out_bf, hn_bf = article_model(batch_first=True)(x_tm.transpose(0, 1), h0)
    assert out_bf.shape == (2, 4, 5) and hn_bf.shape == hn_tm.shape == (2, 2, 5)
    assert torch.equal(out_bf, out_tm.transpose(0, 1))
    assert torch.equal(hn_bf, hn_tm)
    # the last step is output[:, -1] in batch-first layout; output[-1] is the last sequence
    assert torch.equal(out_bf[:, -1], hn_bf[-1])
    assert torch.equal(out_bf[-1], out_tm[:, -1])


def test_article_batch_first_example_repeats_hn0_mistake():
    out, hn = torch.tensor(ARTICLE_PRINTED_OUTPUT_BF), torch.tensor(ARTICLE_PRINTED_HN_BF)
    # impossible for any weights: output[:, -1] differs from hn[-1]; it equals hn[0] instead
    assert not torch.equal(out[:, -1], hn[-1]) and torch.equal(out[:, -1], hn[0])


def test_view_is_not_transpose():
    x = torch.from_numpy(article_input())
    viewed, swapped = x.view(2, 4, 3), x.transpose(0, 1)
    assert viewed.shape == swapped.shape
    assert not torch.equal(viewed, swapped)
    assert torch.equal(swapped, torch.tensor(ARTICLE_BATCH_FIRST_LITERAL))
    with pytest.raises(RuntimeError):
        swapped.view(8, 3)  # a transposed view is not contiguous


# -- unbatched ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_equals_batch_of_one(batch_first):
    rnn = article_model(batch_first=batch_first)
    x1 = torch.from_numpy(article_input())[:, 0]  # (T, D)
    x1_batched = x1[None] if batch_first else x1[:, None]
    with torch.no_grad():
        out_u, hn_u = rnn(x1, torch.zeros(2, 5))
        out_b, hn_b = rnn(x1_batched, torch.zeros(2, 1, 5))
    out_b = out_b[0] if batch_first else out_b[:, 0]
    assert out_u.shape == (4, 5) and hn_u.shape == (2, 5)
    assert torch.equal(out_u, out_b) and torch.equal(hn_u, hn_b[:, 0])


def test_unbatched_rnnlib_parity():
    rnn = article_model(torch.float64)
    x1 = torch.from_numpy(article_input(dtype=np.float64))[:, 0]
    ours = TorchRNN(3, 5, 2, dtype=torch.float64)
    ours.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        ref_out, ref_hn = rnn(x1)
        tr_out, tr_hn = ours(x1)
    np_out, np_hn = NumpyRNN.from_torch(rnn)(x1.numpy())
    assert np.abs(np_out - ref_out.numpy()).max() < 1e-12 and np.abs(np_hn - ref_hn.numpy()).max() < 1e-12
    assert (tr_out - ref_out).abs().max() < 1e-12 and (tr_hn - ref_hn).abs().max() < 1e-12


def test_sequences_in_a_batch_are_independent():
    rnn = article_model()
    x = torch.from_numpy(article_input())
    with torch.no_grad():
        out, hn = rnn(x)
        out1, hn1 = rnn(x[:, 0])
    assert torch.allclose(out1, out[:, 0], rtol=0, atol=1e-6) and torch.allclose(hn1, hn[:, 0], rtol=0, atol=1e-6)


# -- relu and bias=False --------------------------------------------------------------------


def test_relu_keeps_parameters_and_outputs_are_nonnegative():
    relu, tanh = article_model(nonlinearity="relu"), article_model()
    assert list(relu.state_dict()) == list(tanh.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(relu.state_dict().values(), tanh.state_dict().values(), strict=True))
    with torch.no_grad():
        out, hn = relu(torch.from_numpy(article_input()))
    assert (out >= 0).all() and (out == 0).any() and torch.equal(out[-1], hn[-1])


def test_no_bias_has_only_weights_and_maps_zero_to_zero():
    rnn = article_model(bias=False)
    assert [n for n, _ in rnn.named_parameters()] == ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]
    assert sum(p.numel() for p in rnn.parameters()) == 90
    with torch.no_grad():
        assert (rnn(torch.zeros(4, 2, 3))[0] == 0).all()
        assert not (article_model()(torch.zeros(4, 2, 3))[0] == 0).all()


@pytest.mark.parametrize("flags", [{"nonlinearity": "relu"}, {"bias": False}])
def test_relu_and_no_bias_rnnlib_parity(flags):
    ref = article_model(torch.float64, **flags)
    x = torch.from_numpy(article_input(dtype=np.float64))
    ours = TorchRNN(3, 5, 2, dtype=torch.float64, **flags)
    ours.load_state_dict(ref.state_dict())
    with torch.no_grad():
        (o_ref, h_ref), (o_tr, h_tr) = ref(x), ours(x)
    o_np, h_np = NumpyRNN.from_torch(ref)(x.numpy())
    assert np.abs(o_np - o_ref.numpy()).max() < 1e-12 and np.abs(h_np - h_ref.numpy()).max() < 1e-12
    assert (o_tr - o_ref).abs().max() < 1e-12 and (h_tr - h_ref).abs().max() < 1e-12


# -- initial state --------------------------------------------------------------------------


def test_default_h0_is_zeros():
    rnn = article_model()
    x = torch.from_numpy(article_input())
    with torch.no_grad():
        a, ha = rnn(x)
        b, hb = rnn(x, torch.zeros(2, 2, 5))
    assert torch.equal(a, b) and torch.equal(ha, hb)


def test_random_h0_influence_decays_for_article_weights():
    rnn = article_model(torch.float64)
    x = torch.from_numpy(article_input(dtype=np.float64))
    gen = torch.Generator().manual_seed(0)
    h0_random = torch.randn(2, 2, 5, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        gap = (rnn(x, h0_random)[0] - rnn(x)[0]).abs().amax(dim=(1, 2))
        assert gap[-1] < gap[0]
        x_long = torch.randn(30, 2, 3, generator=gen, dtype=torch.float64)
        gap_long = (rnn(x_long, h0_random)[0] - rnn(x_long)[0]).abs().amax(dim=(1, 2))
        slope = (1 - rnn(x_long)[0] ** 2).mean()
    assert gap_long[-1] < 1e-6 * gap_long[0]
    assert slope < 0.9


def _article_random_h0_decay_in_decades():
    """The chapter's run: log10 of the top-layer output gap at step 30 over step 1 (negative)."""
    rnn = article_model(torch.float64)
    gen = torch.Generator().manual_seed(0)
    h0_random = torch.randn(2, 2, 5, generator=gen, dtype=torch.float64)
    x_long = torch.randn(30, 2, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        gap = (rnn(x_long, h0_random)[0] - rnn(x_long)[0]).abs().amax(dim=(1, 2))
    return rnn, torch.log10(gap[-1] / gap[0]).item()


def test_random_h0_fades_mainly_through_the_linear_recurrence_rho_below_1():
    """rho(W_hh) < 1 although ||W_hh||_2 > 1, and ||W_hh^29||_2 alone gives most (not all) of the measured decay."""
    rnn, decades = _article_random_h0_decay_in_decades()
    assert -9.5 < decades < -8.5  # "about nine orders of magnitude"
    for name, rho_want in (("weight_hh_l0", 0.598), ("weight_hh_l1", 0.526)):
        W = rnn.state_dict()[name].numpy()
        rho = spectral_radius(W)
        powers = power_norms(W, 29)
        assert abs(rho - rho_want) < 5e-4 and rho < 1 < powers[1]  # the one-step norm bound says nothing
        linear = np.log10(powers[29])
        # the linear recurrence accounts for at least two thirds of the decades; saturation for the rest
        assert 2 / 3 * decades > linear > decades
        # Gelfand: ||W^k||^(1/k) approaches rho, far below ||W||_2
        assert abs(powers[29] ** (1 / 29) - rho) < 0.05
    # with the powers of W_hh alone, the article's h0 difference would already be below 1e-6 after 29 steps
    assert all(power_norms(rnn.state_dict()[k].numpy(), 29)[29] < 1e-6 for k in ("weight_hh_l0", "weight_hh_l1"))


@pytest.mark.parametrize("H", [5, 50, 500])
def test_default_init_spectral_radius_is_about_one_over_sqrt3_for_any_H(H):
    rhos, norms = [], []
    for seed in range(10):
        torch.manual_seed(seed)
        W = nn.RNN(1, H).weight_hh_l0.detach().double().numpy()
        rhos.append(spectral_radius(W))
        norms.append(np.linalg.norm(W, 2))
    assert abs(np.mean(rhos) - 1 / np.sqrt(3)) < 0.04
    if H >= 50:
        assert abs(np.mean(norms) - 2 / np.sqrt(3)) < 0.06  # the norm is above 1, the radius well below


def test_learned_h0_gets_gradient_and_moves():
    torch.manual_seed(ARTICLE_SEED)
    model = RNNWithLearnedH0(3, 5, 2).double()
    model.rnn.requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    h0_star = torch.randn(2, 1, 5, generator=gen, dtype=torch.float64)
    x = torch.randn(6, 8, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        target, _ = model.rnn(x, h0_star.expand(-1, 8, -1))
    optimiser = torch.optim.Adam([model.h0], lr=0.05)
    losses = []
    for step in range(51):
        loss = ((model(x)[0] - target) ** 2).mean()
        losses.append(loss.item())
        if step == 50:
            break
        optimiser.zero_grad()
        loss.backward()
        if step == 0:
            assert model.h0.grad is not None and model.h0.grad.abs().max() > 0
            assert all(p.grad is None for p in model.rnn.parameters())
        optimiser.step()
    assert losses[-1] < 0.1 * losses[0]
    assert model.h0.abs().max() > 0.1


def test_learned_h0_gradient_is_the_sum_over_the_batch():
    torch.manual_seed(ARTICLE_SEED)
    model = RNNWithLearnedH0(3, 5, 2).double()
    with torch.no_grad():
        model.h0.normal_(generator=torch.Generator().manual_seed(3))
    x = torch.from_numpy(article_input(dtype=np.float64))
    model(x)[0].sum().backward()
    per_sequence = model.h0.detach().repeat(1, 2, 1).requires_grad_(True)  # an explicit copy per sequence
    model.rnn(x, per_sequence)[0].sum().backward()
    assert torch.allclose(model.h0.grad, per_sequence.grad.sum(dim=1, keepdim=True), rtol=0, atol=1e-12)


def test_h0_is_not_broadcast_over_the_batch():
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(2, 2, 5\), got \[2, 1, 5\]"):
        article_model()(torch.from_numpy(article_input()), torch.zeros(2, 1, 5))


# -- h0 layout pitfall ----------------------------------------------------------------------


def test_h0_in_batch_first_layout_is_rejected_when_N_differs_from_L():
    x = torch.zeros(3, 4, 3)
    h0_wrong = torch.zeros(3, 2, 5)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(2, 3, 5\), got \[3, 2, 5\]"):
        article_model(batch_first=True)(x, h0_wrong)
    message = r"h0 must have shape \(num_layers\*num_directions, N, H\) = \(2, 3, 5\), got \(3, 2, 5\)"
    with pytest.raises(ValueError, match=message):
        TorchRNN(3, 5, 2, batch_first=True)(x, h0_wrong)
    with pytest.raises(ValueError, match=message):
        NumpyRNN(3, 5, 2, batch_first=True, dtype=np.float32, seed=0)(x.numpy(), h0_wrong.numpy())


def test_h0_in_batch_first_layout_is_silent_and_wrong_when_N_equals_L():
    rnn = article_model(batch_first=True)
    x = torch.from_numpy(article_input(batch_first=True))
    h0 = torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        right, _ = rnn(x, h0)
        wrong, _ = rnn(x, h0.transpose(0, 1).contiguous())
    assert (right - wrong).abs().max() > 0.01


# -- the shape table --------------------------------------------------------------------------


def test_shape_table_matches_all_three_implementations():
    rows = shape_table(T=6, N=3, D=7, H=5)
    assert len(rows) == 16
    assert len({(r.batched, r.batch_first, r.bidirectional, r.num_layers) for r in rows}) == 16
    assert all(r.agree for r in rows)
    assert max(r.max_abs_diff for r in rows) < 1e-12


def test_shape_table_rows_follow_the_rule():
    for r in shape_table(T=6, N=3, D=7, H=5):
        dirs = 2 if r.bidirectional else 1
        assert r.h_n == r.h0  # never batch-first
        assert r.h_n[0] == r.num_layers * dirs and r.output[-1] == dirs * 5
        if not r.batched:
            assert r.input == (6, 7) and r.output == (6, dirs * 5)
        elif r.batch_first:
            assert r.input == (3, 6, 7) and r.output == (3, 6, dirs * 5)
        else:
            assert r.input == (6, 3, 7) and r.output == (6, 3, dirs * 5)


@pytest.mark.parametrize(
    "batched,batch_first,bidirectional,num_layers",
    list(itertools.product((True, False), (False, True), (False, True), (1, 3))),
)
def test_run_three_shapes_equal_formula(batched, batch_first, bidirectional, num_layers):
    want = expected_shapes(2, 4, 3, 2, num_layers, bidirectional, batch_first, batched)
    for out, h_n in run_three(2, 4, 3, 2, num_layers, bidirectional, batch_first, batched, seed=5).values():
        assert out.shape == want["output"] and h_n.shape == want["h_n"]


def test_format_shape_table_is_aligned_and_flags_disagreement():
    rows = shape_table()
    lines = format_shape_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert all(line.endswith("yes") for line in lines[2:])
    bad = ShapeRow(True, False, False, 1, (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1), False, float("inf"))
    assert format_shape_table([bad]).splitlines()[-1].endswith("NO")


def test_view_after_transpose_needs_contiguous_or_reshape():
    """Merging the first two axes of a transposed tensor with .view fails; .contiguous().view and .reshape agree."""
    x = torch.from_numpy(article_input())
    swapped = x.transpose(0, 1)
    with pytest.raises(RuntimeError):
        swapped.view(8, 3)
    assert torch.equal(swapped.contiguous().view(8, 3), swapped.reshape(8, 3))


# --- The memory-layout figure (rnnlib.explain.memory_layout) -----------------------------------


@pytest.mark.parametrize("T, N", [(4, 2), (3, 5), (1, 3), (6, 1)])
def test_memory_layout_figure_matches_view_and_transpose(T, N):
    """The blocks the figure shows in each row are the ones .view and .transpose really read."""
    import matplotlib.pyplot as plt

    from rnnlib.explain.memory_layout import draw_memory_layout, memory_blocks, transpose_blocks, view_blocks

    D = 3
    # x[t-1, n-1] = (t, n, 0): every block says where it comes from.
    x = torch.tensor([[[t, n, 0] for n in range(1, N + 1)] for t in range(1, T + 1)])
    flat = x.reshape(T * N, D)
    assert [tuple(r[:2].tolist()) for r in flat] == memory_blocks(T, N)
    viewed, swapped = x.view(N, T, D), x.transpose(0, 1)
    assert [[tuple(b[:2].tolist()) for b in row] for row in viewed] == view_blocks(T, N)
    assert [[tuple(b[:2].tolist()) for b in row] for row in swapped] == transpose_blocks(T, N)
    # transpose reads memory with stride N blocks along a row: the offsets the figure prints.
    offsets = {block: k for k, block in enumerate(memory_blocks(T, N))}
    assert swapped.stride()[1] == N * D
    for n, row in enumerate(transpose_blocks(T, N)):
        assert [offsets[b] for b in row] == list(range(n, T * N, N))
    fig = draw_memory_layout(T, N)
    gids = {p.get_gid() for p in fig.axes[0].patches if p.get_gid()}
    assert {g for g in gids if g.startswith("memory:")} == {f"memory:{k}" for k in range(T * N)}
    assert len([g for g in gids if g.startswith("view:")]) == T * N
    plt.close(fig)
