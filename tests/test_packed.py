"""Variable-length sequences: the claims of Chapter 8 (08_variable_length).

* ``NumpyRNN(lengths=)`` and ``TorchRNN`` (``lengths=`` or a ``PackedSequence``) match
  ``nn.RNN`` on packed input, forward and backward, in float64, for stacked and
  bidirectional models, ``batch_first`` and both ``enforce_sorted`` settings;
* unpacked outputs are zero past each end, and the padding receives zero gradient;
* ``h_n`` of a packed (or masked) run is each sequence's own last state, the same as
  running it alone; gathering ``output[lengths-1, arange(N)]`` gives ``h_n[-1]``
  (forward), and for bidirectional ``h_n[-1] == output[0, :, H:]``;
* a plain padded run keeps running over the padding (``output[-1]`` and ``h_n`` wrong for
  short sequences) while its real-step outputs stay right for a forward RNN; a bidirectional
  plain padded run is wrong at every step of a short sequence;
* the mask formulation (hold the state, zero the output) equals packing;
* ``sorted_indices`` is the descending argsort of the lengths and ``unsorted_indices`` its
  inverse; ``data`` has ``sum(lengths)`` rows; packing never reads the padding;
* pitfalls: unsorted lengths need ``enforce_sorted=False``; lengths must be on the CPU;
  ``batch_first`` must agree in pack and pad; ``total_length``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from rnnlib import NumpyRNN, TorchRNN, check_rnn_gradients
from rnnlib.explain.examples import ARTICLE_SEED
from rnnlib.gradcheck import max_abs_difference as max_abs

TOL = 1e-12
PROPERTY = settings(max_examples=15, deadline=None, derandomize=True, database=None)


def chapter_batch():
    """The chapter's batch: lengths [2, 4, 3], D=3, zero padding, time-major (4, 3, 3)."""
    rng = np.random.default_rng(0)
    lengths = torch.tensor([2, 4, 3])
    seqs = [torch.from_numpy(rng.standard_normal((n, 3))) for n in lengths.tolist()]
    return seqs, pad_sequence(seqs), lengths


def article_rnn(bidirectional: bool = False) -> nn.RNN:
    torch.manual_seed(ARTICLE_SEED)
    return nn.RNN(3, 5, 2, bidirectional=bidirectional).double()


def time_mask(T: int, lengths) -> np.ndarray:
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


def loss(out, h_n, G, G_n):
    return (out * G).sum() + (h_n * G_n).sum()


def autograd_run(model, x, lengths, G, G_n, packed, enforce_sorted=False, h0=None):
    """(padded output, h_n, d_x, d_h0, {name: grad}) by autograd; ``packed`` feeds a PackedSequence."""
    x = x.clone().requires_grad_(True)
    h0 = None if h0 is None else h0.clone().requires_grad_(True)
    model.zero_grad()
    bf = model.batch_first
    T = x.shape[1 if bf else 0]
    if packed:
        out_p, h_n = model(pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=enforce_sorted), h0)
        out, _ = pad_packed_sequence(out_p, batch_first=bf, total_length=T)
    else:
        out, h_n = model(x, h0, lengths=lengths)
    loss(out, h_n, G, G_n).backward()
    return (
        out.detach(),
        h_n.detach(),
        x.grad,
        None if h0 is None else h0.grad,
        {k: p.grad for k, p in model.named_parameters()},
    )


def make_case(T, N, D, H, L, bidirectional, batch_first, enforce_sorted, with_h0, seed, lengths=None):
    rng = np.random.default_rng(seed)
    if lengths is None:
        lengths = rng.integers(1, T + 1, size=N)
        lengths[rng.integers(N)] = T  # the longest sequence fills the batch (else total_length matters)
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    if enforce_sorted:
        lengths = torch.sort(lengths, descending=True).values
    dirs = 2 if bidirectional else 1
    x = torch.from_numpy(rng.standard_normal((T, N, D)))
    x[torch.from_numpy(~time_mask(T, lengths))] = 0.0
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    h0 = torch.from_numpy(0.5 * rng.standard_normal((L * dirs, N, H))) if with_h0 else None
    G = torch.from_numpy(rng.standard_normal(tuple(x.shape[:2]) + (H * dirs,)))
    G_n = torch.from_numpy(rng.standard_normal((L * dirs, N, H)))
    torch.manual_seed(seed)
    rnn = nn.RNN(D, H, L, bidirectional=bidirectional, batch_first=batch_first, dtype=torch.float64)
    return rnn, x, lengths, h0, G, G_n


# --------------------------------------------------------------------------------------
# Parity with nn.RNN on packed input, forward and backward
# --------------------------------------------------------------------------------------

GRID = [(L, bi, bf, es) for L in (1, 2, 3) for bi in (False, True) for bf in (False, True) for es in (False, True)]


@pytest.mark.parametrize(
    "L,bidirectional,batch_first,enforce_sorted",
    GRID,
    ids=[
        f"L{L}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-{'sorted' if es else 'unsorted'}"
        for L, bi, bf, es in GRID
    ],
)
def test_numpy_and_torch_match_nn_rnn_on_packed_input_forward_and_backward(
    L, bidirectional, batch_first, enforce_sorted
) -> None:
    rnn, x, lengths, h0, G, G_n = make_case(
        6,
        5,
        3,
        4,
        L,
        bidirectional,
        batch_first,
        enforce_sorted,
        with_h0=True,
        seed=L * 8 + bidirectional * 4 + batch_first * 2 + enforce_sorted,
    )
    r_out, r_h, r_dx, r_dh0, r_grads = autograd_run(rnn, x, lengths, G, G_n, True, enforce_sorted, h0)

    numpy_rnn = NumpyRNN.from_torch(rnn)
    n_out, n_h = numpy_rnn.forward(x.numpy(), h0.numpy(), lengths=lengths.numpy())
    n_dx, n_dh0 = numpy_rnn.backward(G.numpy(), G_n.numpy())
    assert max_abs(n_out, r_out) < TOL and max_abs(n_h, r_h) < TOL
    assert max_abs(n_dx, r_dx) < TOL and max_abs(n_dh0, r_dh0) < TOL
    for k in r_grads:
        assert max_abs(numpy_rnn.grads[k], r_grads[k]) < TOL, k

    torch_rnn = TorchRNN(3, 4, L, bidirectional=bidirectional, batch_first=batch_first, dtype=torch.float64)
    torch_rnn.load_state_dict(rnn.state_dict())
    for packed in (False, True):
        t_out, t_h, t_dx, t_dh0, t_grads = autograd_run(torch_rnn, x, lengths, G, G_n, packed, enforce_sorted, h0)
        assert max_abs(t_out, r_out) < TOL and max_abs(t_h, r_h) < TOL, packed
        assert max_abs(t_dx, r_dx) < TOL and max_abs(t_dh0, r_dh0) < TOL, packed
        for k in r_grads:
            assert max_abs(t_grads[k], r_grads[k]) < TOL, (packed, k)


@PROPERTY
@given(
    T=st.integers(1, 6),
    N=st.integers(1, 5),
    L=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_numpy_packed_parity_property(T, N, L, bidirectional, batch_first, seed) -> None:
    rnn, x, lengths, h0, G, G_n = make_case(T, N, 2, 3, L, bidirectional, batch_first, False, True, seed)
    r_out, r_h, r_dx, r_dh0, r_grads = autograd_run(rnn, x, lengths, G, G_n, True, False, h0)
    numpy_rnn = NumpyRNN.from_torch(rnn)
    n_out, n_h = numpy_rnn.forward(x.numpy(), h0.numpy(), lengths=lengths.numpy())
    n_dx, n_dh0 = numpy_rnn.backward(G.numpy(), G_n.numpy())
    assert max_abs(n_out, r_out) < TOL and max_abs(n_h, r_h) < TOL
    assert max_abs(n_dx, r_dx) < TOL and max_abs(n_dh0, r_dh0) < TOL
    assert max(max_abs(numpy_rnn.grads[k], r_grads[k]) for k in r_grads) < TOL


def test_torchrnn_packed_output_data_lines_up_with_nn_rnn_packed_data() -> None:
    rnn, x, lengths, _, _, _ = make_case(6, 5, 3, 4, 2, True, False, False, False, seed=3)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    torch_rnn = TorchRNN(3, 4, 2, bidirectional=True, dtype=torch.float64)
    torch_rnn.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        r_p, r_h = rnn(packed)
        t_p, t_h = torch_rnn(packed)
    assert torch.equal(t_p.batch_sizes, r_p.batch_sizes)
    assert torch.equal(t_p.sorted_indices, r_p.sorted_indices)
    assert torch.equal(t_p.unsorted_indices, r_p.unsorted_indices)
    assert max_abs(t_p.data, r_p.data) < TOL and max_abs(t_h, r_h) < TOL


def test_numpy_gradients_with_lengths_match_finite_differences() -> None:
    model = NumpyRNN(2, 3, 2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    errors = check_rnn_gradients(model, x, lengths=np.array([3, 5, 1]))
    assert max(errors.values()) < 1e-6, errors


# --------------------------------------------------------------------------------------
# Outputs and final states of a packed run
# --------------------------------------------------------------------------------------


def test_unpacked_output_is_zero_past_each_end() -> None:
    seqs, x, lengths = chapter_batch()
    for bi in (False, True):
        with torch.no_grad():
            out_p, _ = article_rnn(bi)(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out, out_lengths = pad_packed_sequence(out_p, total_length=4)
        mask = torch.from_numpy(time_mask(4, lengths))
        assert (out[~mask] == 0).all() and torch.equal(out_lengths, lengths)
        o, _ = NumpyRNN.from_torch(article_rnn(bi)).forward(x.numpy(), lengths=lengths.numpy())
        assert (o[~mask.numpy()] == 0).all()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_h_n_is_each_sequences_last_state_as_if_run_alone(bidirectional) -> None:
    seqs, x, lengths = chapter_batch()
    rnn = article_rnn(bidirectional)
    with torch.no_grad():
        _, h_n = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        alone = torch.stack([rnn(s[:, None])[1][:, 0] for s in seqs], dim=1)
        out_p, _ = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out, _ = pad_packed_sequence(out_p, total_length=4)
        for n, s in enumerate(seqs):
            assert max_abs(out[: lengths[n], n], rnn(s[:, None])[0][:, 0]) < TOL
    assert max_abs(h_n, alone) < TOL
    _, h_np = NumpyRNN.from_torch(rnn).forward(x.numpy(), lengths=lengths.numpy())
    assert max_abs(h_np, alone) < TOL


@pytest.mark.parametrize("batch_first", [False, True])
def test_gathered_last_output_equals_h_n_for_forward_rnn(batch_first) -> None:
    _, x, lengths = chapter_batch()
    torch.manual_seed(ARTICLE_SEED)
    rnn = nn.RNN(3, 5, 2, batch_first=batch_first).double()
    xi = x.transpose(0, 1) if batch_first else x
    with torch.no_grad():
        out_p, h_n = rnn(pack_padded_sequence(xi, lengths, batch_first=batch_first, enforce_sorted=False))
    out, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=4)
    ar = torch.arange(3)
    last = out[ar, lengths - 1] if batch_first else out[lengths - 1, ar]
    assert max_abs(last, h_n[-1]) < TOL


def test_output_last_step_is_zero_not_last_state_for_short_sequences() -> None:
    _, x, lengths = chapter_batch()
    with torch.no_grad():
        out_p, h_n = article_rnn()(pack_padded_sequence(x, lengths, enforce_sorted=False))
    out, _ = pad_packed_sequence(out_p, total_length=4)
    short = lengths < 4
    assert (out[-1, short] == 0).all()
    assert max_abs(out[-1, ~short], h_n[-1, ~short]) < TOL
    assert (h_n[-1, short].abs() > 0).all()


def test_bidirectional_packed_h_n_halves_equal_output_at_own_last_and_first_steps() -> None:
    _, x, lengths = chapter_batch()
    with torch.no_grad():
        out_p, h_n = article_rnn(True)(pack_padded_sequence(x, lengths, enforce_sorted=False))
    out, _ = pad_packed_sequence(out_p, total_length=4)
    ar = torch.arange(3)
    assert max_abs(h_n[-2], out[lengths - 1, ar, :5]) < TOL
    assert max_abs(h_n[-1], out[0, :, 5:]) < TOL


# --------------------------------------------------------------------------------------
# Plain padded runs
# --------------------------------------------------------------------------------------


def test_plain_padded_run_keeps_running_over_padding() -> None:
    seqs, x, lengths = chapter_batch()
    rnn = article_rnn()
    with torch.no_grad():
        out, h_n = rnn(x)
        for n, s in enumerate(seqs):
            o_alone, h_alone = rnn(s[:, None])
            if lengths[n] < 4:
                assert max_abs(out[-1, n], o_alone[-1, 0]) > 1e-3
                assert max_abs(h_n[:, n], h_alone[:, 0]) > 1e-3
            else:
                assert max_abs(h_n[:, n], h_alone[:, 0]) < TOL
            # a forward RNN's real-step outputs have not seen the padding yet
            assert max_abs(out[: lengths[n], n], o_alone[:, 0]) < TOL


def test_plain_padded_bidirectional_run_is_wrong_at_every_real_step_of_short_sequences() -> None:
    seqs, x, lengths = chapter_batch()
    rnn = article_rnn(True)
    with torch.no_grad():
        out, _ = rnn(x)
        for n, s in enumerate(seqs):
            o_alone = rnn(s[:, None])[0][:, 0]
            k = lengths[n]
            if k < 4:
                assert max_abs(out[0, n, 5:], o_alone[0, 5:]) > 1e-3  # even the first step
                assert max_abs(out[:k, n, :5], o_alone[:, :5]) > 1e-3  # upper layer's forward half too
            else:
                assert max_abs(out[:, n], o_alone) < TOL


# --------------------------------------------------------------------------------------
# The mask formulation
# --------------------------------------------------------------------------------------


def masked_layer(x, lengths, W_ih, W_hh, b, h0, reverse=False):
    m = (np.arange(len(x))[:, None] < lengths[None, :])[..., None]
    h, out = h0, [None] * len(x)
    for t in reversed(range(len(x))) if reverse else range(len(x)):
        h = np.where(m[t], np.tanh(x[t] @ W_ih.T + h @ W_hh.T + b), h)
        out[t] = np.where(m[t], h, 0.0)
    return np.stack(out), h


@pytest.mark.parametrize("bidirectional", [False, True])
def test_mask_formulation_equals_packing(bidirectional) -> None:
    _, x, lengths = chapter_batch()
    rnn = article_rnn(bidirectional)
    P = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    inp, last = x.numpy(), []
    for layer in range(2):
        outs = []
        for suffix, reverse in (("", False), ("_reverse", True)) if bidirectional else (("", False),):
            o, h = masked_layer(
                inp,
                lengths.numpy(),
                P[f"weight_ih_l{layer}{suffix}"],
                P[f"weight_hh_l{layer}{suffix}"],
                P[f"bias_ih_l{layer}{suffix}"] + P[f"bias_hh_l{layer}{suffix}"],
                np.zeros((3, 5)),
                reverse,
            )
            outs.append(o)
            last.append(h)
        inp = np.concatenate(outs, axis=-1)
    with torch.no_grad():
        out_p, h_n = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
    out, _ = pad_packed_sequence(out_p, total_length=4)
    assert max_abs(inp, out) < TOL and max_abs(np.stack(last), h_n) < TOL


def test_padding_receives_zero_gradient() -> None:
    rnn, x, lengths, h0, G, G_n = make_case(6, 5, 3, 4, 2, True, False, False, True, seed=7)
    _, _, r_dx, _, _ = autograd_run(rnn, x, lengths, G, G_n, True, False, h0)
    numpy_rnn = NumpyRNN.from_torch(rnn)
    numpy_rnn.forward(x.numpy(), h0.numpy(), lengths=lengths.numpy())
    n_dx, _ = numpy_rnn.backward(G.numpy(), G_n.numpy())
    pad = ~time_mask(6, lengths)
    assert (r_dx[torch.from_numpy(pad)] == 0).all() and (n_dx[pad] == 0).all()


def test_masked_numpy_computes_on_padding_nan_poisons_weight_gradient_but_not_packing() -> None:
    _, x, lengths = chapter_batch()
    mask = torch.from_numpy(time_mask(4, lengths))
    x_nan = x.clone()
    x_nan[~mask] = float("nan")
    rnn = article_rnn()
    numpy_rnn = NumpyRNN.from_torch(rnn)
    o, h = numpy_rnn.forward(x_nan.numpy(), lengths=lengths.numpy())
    assert np.isfinite(o).all() and np.isfinite(h).all()
    numpy_rnn.backward(np.ones_like(o), np.ones_like(h))
    assert np.isnan(numpy_rnn.grads["weight_ih_l0"]).any()
    with torch.no_grad():
        po, ph = rnn(pack_padded_sequence(x_nan, lengths, enforce_sorted=False))
    assert torch.isfinite(po.data).all() and torch.isfinite(ph).all()


# --------------------------------------------------------------------------------------
# PackedSequence anatomy
# --------------------------------------------------------------------------------------


def test_sorted_indices_are_descending_argsort_and_unsorted_is_inverse() -> None:
    _, x, lengths = chapter_batch()
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    order = torch.argsort(lengths, descending=True)
    assert torch.equal(packed.sorted_indices, order)
    assert torch.equal(packed.unsorted_indices, torch.argsort(order))
    assert torch.equal(packed.sorted_indices[packed.unsorted_indices], torch.arange(3))


def test_packed_data_has_sum_lengths_rows_in_time_major_sorted_order() -> None:
    _, x, lengths = chapter_batch()
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    assert packed.data.shape == (int(lengths.sum()), 3)
    assert packed.batch_sizes.tolist() == [3, 3, 2, 1]
    assert int(packed.batch_sizes.sum()) == int(lengths.sum())
    order = packed.sorted_indices
    rows = torch.cat([x[t, order[:b]] for t, b in enumerate(packed.batch_sizes.tolist())])
    assert torch.equal(rows, packed.data)


def test_enforce_sorted_true_on_sorted_batch_gives_same_packing_and_h_n_in_sorted_order() -> None:
    seqs, x, lengths = chapter_batch()
    rnn = article_rnn()
    order = torch.argsort(lengths, descending=True)
    p_sorted = pack_padded_sequence(x[:, order], lengths[order])
    p_unsorted = pack_padded_sequence(x, lengths, enforce_sorted=False)
    assert p_sorted.sorted_indices is None
    assert torch.equal(p_sorted.data, p_unsorted.data) and torch.equal(p_sorted.batch_sizes, p_unsorted.batch_sizes)
    with torch.no_grad():
        out_s, h_s = rnn(p_sorted)
        out_u, h_u = rnn(p_unsorted)
    inverse = torch.argsort(order)
    assert torch.equal(h_s[:, inverse], h_u)
    assert torch.equal(
        pad_packed_sequence(out_s, total_length=4)[0][:, inverse], pad_packed_sequence(out_u, total_length=4)[0]
    )


def test_packing_never_reads_the_padding() -> None:
    _, x, lengths = chapter_batch()
    rnn = article_rnn(True)
    x_junk = x.clone()
    x_junk[~torch.from_numpy(time_mask(4, lengths))] = 1e6
    with torch.no_grad():
        a, ha = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        b, hb = rnn(pack_padded_sequence(x_junk, lengths, enforce_sorted=False))
    assert torch.equal(a.data, b.data) and torch.equal(ha, hb)


# --------------------------------------------------------------------------------------
# Pitfalls
# --------------------------------------------------------------------------------------


def test_unsorted_lengths_without_enforce_sorted_false_raise() -> None:
    _, x, lengths = chapter_batch()
    with pytest.raises(RuntimeError, match="enforce_sorted=False"):
        pack_padded_sequence(x, lengths)


def test_lengths_off_the_cpu_raise() -> None:
    _, x, lengths = chapter_batch()
    order = torch.argsort(lengths, descending=True)
    with pytest.raises(RuntimeError, match="1D CPU int64 tensor"):
        pack_padded_sequence(x[:, order], lengths[order].to("meta"))
    assert pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False).data.shape == (9, 3)


def test_batch_first_mismatch_between_pack_and_pad_transposes() -> None:
    _, x, lengths = chapter_batch()
    with torch.no_grad():
        out_p, _ = article_rnn()(
            pack_padded_sequence(x.transpose(0, 1), lengths, batch_first=True, enforce_sorted=False)
        )
    assert pad_packed_sequence(out_p)[0].shape == (4, 3, 5)
    assert pad_packed_sequence(out_p, batch_first=True)[0].shape == (3, 4, 5)


def test_forgotten_batch_first_on_square_batch_is_silent_and_wrong() -> None:
    sq = torch.from_numpy(np.random.default_rng(2).standard_normal((3, 3, 3)))
    sq_lengths = torch.tensor([3, 2, 1])
    right = pack_padded_sequence(sq, sq_lengths, batch_first=True)
    wrong = pack_padded_sequence(sq, sq_lengths)
    assert not torch.equal(right.data, wrong.data)


def test_pad_packed_sequence_pads_to_longest_unless_total_length() -> None:
    _, x, _ = chapter_batch()
    short = torch.tensor([2, 3, 3])
    with torch.no_grad():
        out_p, _ = article_rnn()(pack_padded_sequence(x, short, enforce_sorted=False))
    assert pad_packed_sequence(out_p)[0].shape == (3, 3, 5)
    assert pad_packed_sequence(out_p, total_length=4)[0].shape == (4, 3, 5)


# --------------------------------------------------------------------------------------
# The chapter's exercises
# --------------------------------------------------------------------------------------


def _left_padded_error(r: nn.RNN) -> float:
    seqs, _, _ = chapter_batch()
    left = torch.stack([torch.cat([torch.zeros(4 - len(s), 3, dtype=torch.float64), s]) for s in seqs], dim=1)
    with torch.no_grad():
        out_left, _ = r(left)
        own = torch.stack([r(s[:, None])[1][0, 0] for s in seqs])
    return max_abs(out_left[-1], own)


def test_left_padding_is_exact_when_the_biases_cancel_not_only_without_bias() -> None:
    """With zero filler and h0 = 0, left padding is exact iff b_ih + b_hh = 0; bias=False is one way, not the
    only one."""
    torch.manual_seed(0)
    r = nn.RNN(3, 5).double()
    assert _left_padded_error(r) > 1e-3  # b_ih + b_hh != 0
    with torch.no_grad():
        r.bias_hh_l0.copy_(-r.bias_ih_l0)
    assert r.bias_ih_l0.abs().max() > 0.1  # biases kept, their sum zero
    assert _left_padded_error(r) < TOL
    torch.manual_seed(0)
    assert _left_padded_error(nn.RNN(3, 5, bias=False).double()) < TOL
    with torch.no_grad():  # a sum that is small but not zero breaks it
        r.bias_hh_l0.add_(0.05)
    assert _left_padded_error(r) > 1e-4


def test_masked_mean_pool_equals_mean_of_each_sequence_alone() -> None:
    seqs, x, lengths = chapter_batch()
    rnn = article_rnn()
    with torch.no_grad():
        out_p, _ = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out, _ = pad_packed_sequence(out_p, total_length=4)
        pooled = out.sum(dim=0) / lengths[:, None].to(out.dtype)
        alone = torch.stack([rnn(s[:, None])[0][:, 0].mean(dim=0) for s in seqs])
    assert max_abs(pooled, alone) < TOL
    assert max_abs(out.mean(dim=0), alone) > 1e-3  # dividing by T is wrong for short sequences


# --- The staircase figure (rnnlib.explain.packing_diagram) -------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_staircase_is_pack_padded_sequence_layout(lengths):
    """batch_sizes, sorted_indices and each step's row in data are exactly pack_padded_sequence's."""
    from rnnlib.explain.packing_diagram import packing_staircase

    stairs = packing_staircase(lengths)
    T, N = max(lengths), len(lengths)
    x = torch.arange(T * N, dtype=torch.float64).reshape(T, N, 1)  # x[t, n] = t*N + n
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    assert stairs.batch_sizes.tolist() == packed.batch_sizes.tolist()
    assert stairs.sorted_indices.tolist() == packed.sorted_indices.tolist()
    for t in range(T):
        for j in range(N):
            row = stairs.data_row[t, j]
            assert (row >= 0) == (t < lengths[stairs.sorted_indices[j]])
            if row >= 0:
                assert packed.data[row, 0].item() == t * N + stairs.sorted_indices[j]
    assert (np.diff(stairs.kept.sum(axis=0)) <= 0).all()  # a staircase: lengths descend left to right


def test_staircase_figure_of_chapter_8():
    import matplotlib.pyplot as plt

    from rnnlib.explain.packing_diagram import draw_packing_staircase, packing_staircase

    stairs = packing_staircase([2, 4, 3])
    assert stairs.batch_sizes.tolist() == [3, 3, 2, 1] and stairs.sorted_indices.tolist() == [1, 2, 0]
    fig = draw_packing_staircase([2, 4, 3])
    boxes = [p for p in fig.axes[0].patches if str(p.get_gid()).startswith("step:")]
    assert len(boxes) == 12 and sum(p.get_hatch() is None for p in boxes) == 9
    plt.close(fig)
    with pytest.raises(ValueError):
        packing_staircase([2, 0])
