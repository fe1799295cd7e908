"""Claims of Chapter 11 (performance), one test per claim. No test here times anything.

Timings vary between machines and between runs on one machine, so the chapter's timing cells are
not compared by nbval and nothing here asserts that one implementation is faster than another.
What is asserted is what every machine must reproduce:

* every implementation of the ladder (naive, hoisted, in place, ``layer_forward``, wavefront)
  computes ``nn.RNN``'s output and ``h_n``, in float64 to 1e-12 (they differ from each other only in
  the order of the additions, a few ulps);
* the hoisted ones add the same numbers in the same order as ``layer_forward``, so they agree with it
  to rounding, and the wavefront does too, for every depth and length, the corners ``T = 1`` and
  ``L = 1`` included;
* the FLOPs the implementations really compute, counted product by product, equal the formula
  ``2*T*N*(D_l*H + H^2)`` summed over the layers, and the wavefront makes ``2(T + L - 1)`` calls;
* the memory the forward keeps for BPTT is ``T*N*H`` numbers per layer, autograd's saved tensors
  are 1.51 times that for the chapter's stack, and the checkpointing formula is smallest near
  ``sqrt(T)``;
* ``rnnlib.explain.timing``'s helpers: medians over interleaved runs, thread control that restores the
  counts, log-log slopes.
"""

from __future__ import annotations

import math
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from rnnlib import TorchRNN
from rnnlib.explain.dataflow import critical_path_length
from rnnlib.explain.performance import (
    FlopCounter,
    autograd_saved_bytes,
    hoisted_forward,
    inplace_forward,
    layer_forward_stored_bytes,
    layered_forward,
    naive_forward,
    plot_roofline,
    plot_scaling,
    wavefront_forward,
)
from rnnlib.explain.timing import (
    GATES,
    backward_flops,
    checkpointed_state_bytes,
    current_threads,
    fit_loglog_slope,
    gemm_flops,
    gflops,
    input_projection_flops,
    layer_flops,
    median_times,
    recurrent_flops,
    recurrent_step_bytes,
    stack_flops,
    stored_state_bytes,
    threads,
)

IMPLEMENTATIONS = [naive_forward, hoisted_forward, inplace_forward, layered_forward, wavefront_forward]
COUNTABLE = [naive_forward, hoisted_forward, inplace_forward, wavefront_forward]
SIZES = [(1, 3, 4, 5, 1), (7, 1, 3, 6, 1), (1, 2, 3, 4, 3), (9, 3, 5, 6, 2), (12, 2, 4, 5, 4), (5, 4, 2, 7, 8)]


def stack(T: int, N: int, D: int, H: int, L: int, seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    rnn = nn.RNN(D, H, L).to(dtype)
    params = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    rng = np.random.default_rng(seed)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    x = rng.standard_normal((T, N, D)).astype(np_dtype)
    h0 = rng.standard_normal((L, N, H)).astype(np_dtype)
    return rnn, params, x, h0


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("forward", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_every_implementation_computes_nn_rnn(forward, size) -> None:
    rnn, params, x, h0 = stack(*size)
    with torch.no_grad():
        out_ref, hn_ref = rnn(torch.from_numpy(x), torch.from_numpy(h0))
    out, hn = forward(params, x, h0)
    assert out.shape == out_ref.shape and hn.shape == hn_ref.shape
    assert np.abs(out - out_ref.numpy()).max() < 1e-12
    assert np.abs(hn - hn_ref.numpy()).max() < 1e-12


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_hoisted_and_wavefront_agree_with_layer_forward_to_rounding(size) -> None:
    _, params, x, h0 = stack(*size)
    out_lib, hn_lib = layered_forward(params, x, h0)
    for forward in (hoisted_forward, inplace_forward, wavefront_forward):
        out, hn = forward(params, x, h0)
        assert np.allclose(out, out_lib, rtol=0, atol=1e-14), forward.__name__
        assert np.allclose(hn, hn_lib, rtol=0, atol=1e-14), forward.__name__
    # the naive loop adds the biases at other points of the sum: a few ulps apart, no more
    out_naive, _ = naive_forward(params, x, h0)
    assert np.abs(out_naive - out_lib).max() < 1e-13


def test_hoisted_and_in_place_are_the_same_arithmetic() -> None:
    # same products, same order of additions, same tanh: bit for bit
    _, params, x, h0 = stack(10, 3, 4, 6, 3)
    a, b = hoisted_forward(params, x, h0), inplace_forward(params, x, h0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_wavefront_in_float32_agrees_with_the_layer_loop() -> None:
    _, params, x, h0 = stack(50, 8, 16, 32, 4, dtype=torch.float32)
    out_w, hn_w = wavefront_forward(params, x, h0)
    out_l, hn_l = inplace_forward(params, x, h0)
    assert out_w.dtype == np.float32 and np.abs(out_w - out_l).max() < 1e-6 and np.abs(hn_w - hn_l).max() < 1e-6


def test_implementations_do_not_modify_their_inputs() -> None:
    _, params, x, h0 = stack(6, 2, 3, 4, 3)
    copies = ({k: v.copy() for k, v in params.items()}, x.copy(), h0.copy())
    for forward in IMPLEMENTATIONS:
        forward(params, x, h0)
    assert all(np.array_equal(params[k], copies[0][k]) for k in params)
    assert np.array_equal(x, copies[1]) and np.array_equal(h0, copies[2])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("forward", COUNTABLE, ids=lambda f: f.__name__)
def test_counted_flops_equal_the_formula(forward, size) -> None:
    T, N, D, H, L = size
    _, params, x, h0 = stack(*size)
    counter = FlopCounter()
    forward(params, x, h0, matmul=counter)
    formula = sum(2 * T * N * ((D if l == 0 else H) * H + H * H) for l in range(L))
    assert counter.flops == formula == stack_flops(T, N, D, H, L)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_call_counts_per_implementation(size) -> None:
    T, N, D, H, L = size
    _, params, x, h0 = stack(*size)
    calls = {}
    for forward in COUNTABLE:
        counter = FlopCounter()
        forward(params, x, h0, matmul=counter)
        calls[forward.__name__] = counter.calls
    assert calls["naive_forward"] == 2 * T * L
    assert calls["hoisted_forward"] == calls["inplace_forward"] == T * L + L
    # one recurrent call per wavefront, one input call per wavefront that holds a layer above the first,
    # and layer 1's hoisted product
    with_upper = sum(1 for k in range(T + L - 1) if min(L - 1, k) >= max(1, k - T + 1))
    assert calls["wavefront_forward"] == (T + L - 1) + with_upper + 1
    if L > 1 and T > 1:
        assert calls["wavefront_forward"] == 2 * (T + L - 1)
    assert T + L - 1 == critical_path_length(L, T)


def test_flop_counter_counts_batched_products() -> None:
    counter = FlopCounter()
    a, b = np.ones((5, 2, 3)), np.ones((5, 3, 4))
    out = np.empty((5, 2, 4))
    result = counter(a, b, out=out)
    assert result is out and np.all(out == 3)
    assert counter.flops == 5 * gemm_flops(2, 3, 4) and counter.calls == 1


def test_the_cost_model_formulas() -> None:
    T, N, D, H, L = 100, 32, 64, 128, 2
    assert gemm_flops(2, 3, 4) == 48
    assert layer_flops(T, N, D, H) == 2 * T * N * (D * H + H * H)
    assert layer_flops(T, N, D, H) == input_projection_flops(T, N, D, H) + recurrent_flops(T, N, H)
    assert stack_flops(T, N, D, H, L) == 367_001_600
    for cell, gates in (("lstm", 4), ("gru", 3)):
        assert GATES[cell] == gates
        assert stack_flops(T, N, D, H, L, cell) == gates * stack_flops(T, N, D, H, L)
    assert backward_flops(T, N, D, H, L) == 2 * stack_flops(T, N, D, H, L)
    assert recurrent_step_bytes(N, H) == 4 * (H * H + 3 * N * H)
    assert recurrent_step_bytes(N, H, itemsize=8, cell="lstm") == 8 * (4 * H * H + 9 * N * H)
    with pytest.raises(ValueError, match="unknown cell"):
        layer_flops(T, N, D, H, "transformer")
    # the chapter's split: 43% of the FLOPs batchable, 57% sequential
    assert round(100 * L * recurrent_flops(T, N, H) / stack_flops(T, N, D, H, L)) == 57


def test_layer_forward_keeps_T_N_H_numbers_per_layer() -> None:
    for T, N, D, H, L in [(100, 32, 64, 128, 2), (7, 3, 5, 4, 3)]:
        _, params, x, h0 = stack(T, N, D, H, L, dtype=torch.float32)
        assert layer_forward_stored_bytes(params, x, h0) == stored_state_bytes(T, N, H, L) == 4 * T * N * H * L


def test_autograd_saves_one_and_a_half_times_the_states_for_the_chapters_stack() -> None:
    T, N, D, H, L = 100, 32, 64, 128, 2
    torch.manual_seed(0)
    rnn = nn.RNN(D, H, L)
    mine = TorchRNN.from_torch(rnn, dtype=torch.float32)
    x = torch.randn(T, N, D).requires_grad_()
    for module in (rnn, mine):
        saved = autograd_saved_bytes(partial(module, x), exclude=[*module.parameters(), x])
        # layer 1's and layer 2's states, layer 2's stacked input, the two zero h0
        assert saved == 4 * (3 * T * N * H + L * N * H)
        assert f"{saved / stored_state_bytes(T, N, H, L):.2f}" == "1.51"


def test_checkpointing_is_smallest_near_sqrt_T() -> None:
    T, N, H, L = 1000, 64, 512, 4
    assert stored_state_bytes(T, N, H, L) == 500 * 2**20
    assert checkpointed_state_bytes(T, N, H, L, 32) == 32 * 2**20
    by_segment = {k: checkpointed_state_bytes(T, N, H, L, k) for k in range(1, T + 1)}
    best = min(by_segment, key=by_segment.get)
    # ceil(T/k) + k has a flat minimum around sqrt(T) = 31.6 (k = 28..36 all give 64 states): k = 32 is on it
    assert by_segment[best] == by_segment[32] and abs(best - math.sqrt(T)) < 0.15 * math.sqrt(T)
    assert checkpointed_state_bytes(T, N, H, L, T) == checkpointed_state_bytes(T, N, H, L, 1)  # T+1 states either way
    with pytest.raises(ValueError):
        checkpointed_state_bytes(T, N, H, L, 0)


def test_median_times_runs_every_function_the_right_number_of_times() -> None:
    calls = {"a": 0, "b": 0}

    def make(name):
        def run():
            calls[name] += 1

        return run

    result = median_times({"a": make("a"), "b": make("b")}, repeats=5, warmup=2)
    assert list(result) == ["a", "b"] and all(v >= 0 for v in result.values())
    assert calls == {"a": 7, "b": 7}
    with pytest.raises(ValueError):
        median_times({"a": make("a")}, repeats=0)


def test_gflops_and_loglog_slope() -> None:
    assert gflops(3e9, 1.5) == 2.0
    sizes = np.array([10, 20, 40, 80])
    assert fit_loglog_slope(sizes, 3e-6 * sizes**2) == pytest.approx(2.0)
    assert fit_loglog_slope(sizes, np.full(4, 1e-3)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        gflops(1.0, 0.0)


def test_threads_context_restores_the_counts() -> None:
    before = current_threads()
    with threads(2) as inside:
        assert inside.torch == 2 and torch.get_num_threads() == 2
        if inside.blas is not None:  # OpenBLAS reachable
            assert inside.blas == 2
    assert current_threads() == before


def test_the_figures_draw_their_data() -> None:
    work, rates = [1e4, 1e5, 1e6], [1.0, 5.0, 20.0]
    fig = plot_roofline({"a": (work, rates), "b": (work, [2.0, 6.0, 9.0])}, 50.0, (work, [3.0, 10.0, 30.0]), 3e-6)
    lines = fig.axes[0].lines
    assert len(lines) == 5
    assert list(lines[0].get_ydata()) == rates and np.all(lines[3].get_ydata() == 50.0)
    slanted = lines[4]
    assert np.allclose(slanted.get_ydata(), slanted.get_xdata() / 3e-6 / 1e9)
    plt.close(fig)
    fig = plot_scaling(
        {
            "T": {"x": ([1, 2, 4], [1e-3, 2e-3, 4e-3])},
            "N": {"x": ([1, 2], [1e-3, 1e-3])},
            "H": {"x": ([1, 2], [1e-3, 4e-3])},
        },
        {"T": {"x": 1.0}, "N": {"x": 0.0}, "H": {"x": 2.0}},
    )
    assert len(fig.axes) == 3
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), [1, 2, 4])  # in ms
    assert "slope 1.00" in fig.axes[0].get_legend().get_texts()[0].get_text()
    plt.close(fig)
