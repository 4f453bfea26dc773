"""torchvision's fx-wrapped functions (lazy table) and complete reports on real torchvision models."""

from __future__ import annotations

import pytest
import torch

from tests.ops.helpers import cost, function_cost, spec
from torchscan import crawl_module
from torchscan.ops import DEFAULT_REGISTRY
from torchscan.ops.torchvision_ops import shifted_window_attention, stochastic_depth
from torchscan.records import Cost, OpCall

torchvision = pytest.importorskip("torchvision")
OPS = torch.ops.torchvision  # the namespace torchvision's extension fills


def test_lazy_table_resolves_once_torchvision_is_imported() -> None:
    from torchvision.ops import stochastic_depth as function

    assert DEFAULT_REGISTRY.lookup(function) is not None


def test_stochastic_depth() -> None:
    x = spec(4, 3, 2, 2)
    call = OpCall("function", None, (x,), (x,), {"p": 0.2, "mode": "row", "training": False})
    assert stochastic_depth(call) == Cost()
    call = OpCall("function", None, (x,), (x,), {"p": 0.2, "mode": "row", "training": True})
    assert stochastic_depth(call) == Cost(flops=48 + 4, dmas=48 + 4 + 48)


def test_stochastic_depth_called_by_position() -> None:
    """``stochastic_depth(x, p, mode, training)`` by position binds as by name: on 4×3×2×2 (48
    elements) in training, mode "batch" draws one noise value (49 FLOPs, 48 + 1 + 48 DMAs), mode
    "row" one per sample (52 FLOPs); p = 0 or eval return the input (nothing)."""
    from torchvision.ops import stochastic_depth as function

    x = torch.zeros(4, 3, 2, 2)
    assert function_cost(function, x, 0.5, "batch", True) == Cost(flops=49, dmas=97)
    assert function_cost(function, x, 0.5, "row", True) == Cost(flops=52, dmas=100)
    assert function_cost(function, x, 0.0, "row", True) == function_cost(function, x, 0.5, "row", False) == Cost()


def test_window_attention_macs() -> None:
    # 1x8x8x16 input, 4x4 windows (4 windows of 16 tokens), 2 heads, no shift
    x = spec(1, 8, 8, 16)
    attrs = {"window_size": [4, 4], "num_heads": 2, "shift_size": [0, 0], "training": False}
    got = shifted_window_attention(OpCall("function", None, (x,), (x,), attrs))
    tokens, channels = 64, 16
    linear_macs = tokens * channels * 3 * channels + tokens * channels * channels
    attention_macs = 2 * 4 * 16 * 16 * channels  # q kᵀ and attn v over 4 windows
    assert got.macs == linear_macs + attention_macs


WINDOW = {"window_size": [2, 2], "num_heads": 2, "training": False}


@pytest.mark.parametrize(
    ("x", "window", "shift", "flops_over_unshifted", "dmas"),
    [
        (spec(1, 4, 4, 4), [2, 2], [0, 0], 0, 1184),
        (spec(1, 4, 4, 4), [2, 2], [1, 0], 128, 1440),
        (spec(1, 4, 4, 4), [2, 2], [1, 1], 128, 1440),
        (spec(1, 3, 3, 4), [2, 2], [1, 1], 128, 1440 - 2 * (64 - 36)),  # padded to 4 × 4
        (spec(1, 4, 4, 4), [4, 4], [2, 2], 0, None),  # one window: the shift is dropped
    ],
)
def test_window_attention_dmas_and_shift(
    x: object, window: list[int], shift: list[int], flops_over_unshifted: int, dmas: int | None
) -> None:
    """Swin window attention on 1×4×4×4 (C = 4), 2×2 windows, 2 heads, no biases, eval: T = 16
    tokens, Np = 64 padded elements, W = 4 windows of N = 4 tokens, Q = W·h·N² = 128 scores.
    DMAs: qkv Linear 4 → 12 on 16 tokens 64 + 48 + 192 = 304; proj 4 → 4: 64 + 16 + 64 = 144;
    attention q, k, v 3·64, the bias h·N² = 32, its output 64: 288; data movement: input 64, pad 64,
    window partition 2·64, window merge 2·64, crop 64 = 448, and when shifted the two rolls 4·64 =
    256: 1184 unshifted, 1440 shifted. A shifted window adds its mask (one add per score, 128
    FLOPs). A 3×3 input pads to 4×4: the input read and the crop written are 36 elements, not 64."""
    attrs = {**WINDOW, "window_size": window}
    unshifted = shifted_window_attention(OpCall("function", None, (x,), (x,), {**attrs, "shift_size": [0, 0]}))
    got = shifted_window_attention(OpCall("function", None, (x,), (x,), {**attrs, "shift_size": shift}))
    assert got.flops - unshifted.flops == flops_over_unshifted
    if dmas is not None:
        assert got.dmas == dmas
    else:
        assert got == unshifted


def test_window_attention_flops_are_its_linears_and_a_masked_attention() -> None:
    """Unshifted, eval, no biases, on 1×4×4×4 (T = 16 tokens, C = 4), 2×2 windows, 2 heads: the qkv
    Linear 4 → 12 makes 192 outputs of 2·4 − 1 = 7 FLOPs (1,344); the projection 4 → 4, 64 of 7
    (448); the attention over W·h = 8 windows·heads of N = 4 tokens, head dim 2 (Q = 128 scores,
    R = 32 rows): q kᵀ 128·3, the scale and the relative-position bias one each per score, the
    softmax 5·128 − 2·32, attn·v 32·2·7 = 1,664. Total 3,456, = F.linear's formula twice plus
    masked SDPA's on the same shapes."""
    x = spec(1, 4, 4, 4)
    got = shifted_window_attention(OpCall("function", None, (x,), (x,), {**WINDOW, "shift_size": [0, 0]}))
    assert got.flops == 1344 + 448 + 128 * 3 + 128 + 128 + (5 * 128 - 2 * 32) + 32 * 2 * 7 == 3456
    tokens = torch.zeros(16, 4)
    qkv = function_cost(torch.nn.functional.linear, tokens, torch.zeros(12, 4))
    proj = function_cost(torch.nn.functional.linear, tokens, torch.zeros(4, 4))
    q = torch.zeros(8, 4, 2)
    core = function_cost(torch.nn.functional.scaled_dot_product_attention, q, q, q, torch.zeros(8, 4, 4))
    assert got.flops == qkv.flops + proj.flops + core.flops


def test_swin_v2_cosine_attention_flops() -> None:
    """Swin V2 (a logit scale) on 1×4×4×8, 2×2 windows, 4 heads (c = 2): q and k are each
    F.normalize'd over rows of c, ``3·N + 2·R`` (the F.normalize formula, ops/norm.py) on N = T·C =
    128 elements in R = T·h = 64 rows: 512 each; the logit scale clamped and exponentiated, 2·h = 8;
    the scores multiplied by it instead of by 1/√c (as many FLOPs): 1032 FLOPs more than V1."""
    x = spec(1, 4, 4, 8)
    attrs = {**WINDOW, "num_heads": 4, "shift_size": [0, 0]}
    v1 = shifted_window_attention(OpCall("function", None, (x,), (x,), attrs))
    v2 = shifted_window_attention(OpCall("function", None, (x,), (x,), {**attrs, "logit_scale": spec(4, 1, 1)}))
    q = spec(4 * 4, 4, 2)  # windows·heads, tokens, head dim
    normalize = cost(torch.nn.functional.normalize, (q,), (q,), dim=-1)
    assert normalize.flops == 512
    assert v2.flops - v1.flops == 2 * normalize.flops + 8 == 1032
    assert v2.macs == v1.macs


def test_window_attention_dropouts_in_training() -> None:
    """In training, the output's dropout with p > 0 costs one FLOP per element it scales (T·C =
    16·4 = 64); with p = 0 (and no attention dropout) training costs what eval does."""
    x = spec(1, 4, 4, 4)
    attrs = {**WINDOW, "shift_size": [0, 0]}
    evaluated = shifted_window_attention(OpCall("function", None, (x,), (x,), attrs))
    trained = {
        (p, q): shifted_window_attention(
            OpCall("function", None, (x,), (x,), {**attrs, "training": True, "dropout": p, "attention_dropout": q})
        )
        for p, q in ((0.0, 0.0), (0.1, 0.0))
    }
    assert trained[0.0, 0.0] == evaluated
    assert trained[0.1, 0.0].flops - evaluated.flops == 64


def test_relative_position_bias_gather() -> None:
    """Swin's bias for 2×2 windows and 3 heads: the (9, 3) table gathered by a 16-entry index into
    (16, 3), viewed, permuted and copied into (1, 3, 4, 4): the index read (16) and 4 reads/writes
    per output element (4·48): 208 DMAs."""
    from torchvision.models import swin_transformer

    table, index = torch.zeros(9, 3), torch.randint(0, 9, (16,))
    out = swin_transformer._get_relative_position_bias(table, index, [2, 2])
    assert out.shape == (1, 3, 4, 4)
    got = cost(swin_transformer._get_relative_position_bias, (spec(9, 3), spec(16)), (spec(*out.shape),))
    assert got == Cost(dmas=16 + 4 * 48)


def test_patch_merging_pad_copies() -> None:
    """Swin's patch merging on a (3, 5, 2) map: the pad copies the 30 input elements into a (4, 6, 2)
    tensor (48 written), the four strided slices are views, the cat reads their 48 elements and writes
    the (2, 3, 8) output (48): 30 + 48 + 48 + 48 = 174 DMAs, no arithmetic."""
    from torchvision.models import swin_transformer

    out = swin_transformer._patch_merging_pad(torch.zeros(3, 5, 2))
    assert out.shape == (2, 3, 8)
    got = cost(swin_transformer._patch_merging_pad, (spec(3, 5, 2),), (spec(*out.shape),))
    assert got == Cost(dmas=174)


ZOO = ["vit_b_16", "convnext_tiny", "efficientnet_b0", "mobilenet_v3_large", "swin_t", "regnet_y_400mf", "maxvit_t"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_reports_are_complete(name: str) -> None:
    model = getattr(torchvision.models, name)().eval()
    with torch.no_grad():
        report = crawl_module(model, (3, 224, 224))
    assert report.totals.complete, [d.message for d in report.diagnostics]


def test_swin_t_is_complete_and_close_to_published() -> None:
    model = torchvision.models.swin_t().eval()
    report = crawl_module(model, (3, 224, 224))
    assert report.totals.complete, [d.message for d in report.diagnostics]
    assert abs(report.totals.macs / 4.49e9 - 1) < 0.01  # torchvision's card: 4.49 GFLOPS (multiply-adds)


# -- NMS, RoI poolers, MViT helpers ------------------------------------------------------------
def test_nms_counts_every_pair() -> None:
    # 10 boxes: 10·⌈log2 10⌉ sort, 3·10 areas, 13 FLOPs for each of the 45 pairs
    expected = Cost(flops=40 + 30 + 13 * 45, dmas=50 + 5 * 45 + 4)
    for target in (torchvision.ops.nms, OPS.nms, OPS.nms.default):
        assert cost(target, (spec(10, 4), spec(10)), (spec(4, dtype=torch.int64),), iou_threshold=0.5) == expected


@pytest.mark.parametrize(("boxes", "flops"), [(1, 0 + 3), (2, 2 * 1 + 6 + 13), (3, 3 * 2 + 9 + 13 * 3)])
def test_nms_on_few_boxes(boxes: int, flops: int) -> None:
    """One box: no sort, no pair (3 FLOPs for its area); two: a sort of 2·⌈log2 2⌉ = 2 comparisons, 6
    for the areas, one pair of 13 (21); three: 3·⌈log2 3⌉ = 6, 9, three pairs (54). DMAs: 5 per box,
    5 per pair, the kept indices (one per box at most: here all kept)."""
    pairs = boxes * (boxes - 1) // 2
    expected = Cost(flops=flops, dmas=5 * boxes + 5 * pairs + boxes)
    assert cost(torchvision.ops.nms, (spec(boxes, 4), spec(boxes)), (spec(boxes, dtype=torch.int64),)) == expected


FEATURE, ROIS, POOLED = spec(1, 4, 10, 10), spec(3, 5), spec(3, 4, 2, 2)  # N_out 48, 3 RoIs of 2×2 bins


def test_roi_align_samples() -> None:
    # sampling_ratio 2: S = 4 samples per bin, 3·2·2·4 = 48 sample points
    fixed = Cost(flops=40 * 48 + 4 * 48, macs=12 * 48, dmas=16 * 48 + 15 + 48)
    assert cost(OPS.roi_align, (FEATURE, ROIS), (POOLED,), sampling_ratio=2, aligned=False) == fixed
    assert cost(OPS.roi_align.default, (FEATURE, ROIS), (POOLED,), sampling_ratio=2) == fixed
    assert cost(torchvision.ops.roi_align, (FEATURE, ROIS), (POOLED,), output_size=2, sampling_ratio=2) == fixed
    assert cost(torchvision.ops.RoIAlign, (FEATURE, ROIS), (POOLED,), output_size=(2, 2), sampling_ratio=2) == fixed
    # adaptive: an RoI spanning the 10×10 map, S = ⌈10/2⌉·⌈10/2⌉ = 25
    adaptive = Cost(flops=250 * 48 + 4 * 300, macs=75 * 48, dmas=100 * 48 + 15 + 48)
    assert cost(torchvision.ops.roi_align, (FEATURE, ROIS), (POOLED,), output_size=2, sampling_ratio=-1) == adaptive
    # PS RoI align also writes its channel map
    ps = cost(OPS.ps_roi_align, (spec(1, 16, 10, 10), ROIS), (POOLED, POOLED), sampling_ratio=2)
    assert ps == fixed + Cost(dmas=48)


def test_roi_align_called_by_position_binds_its_sampling_ratio() -> None:
    """Every spelling binds ``sampling_ratio``, by position too: torchvision.ops.roi_align applies its
    default -1 (adaptive) when it is left out, the ops' schemas require it. On a 3×10×10 map, one RoI
    over the whole map, 2×2 bins (N_out 12): ratio 2 is S = 4 samples per bin (FLOPs 40·12 + 4·16 =
    544); adaptive S = 25 (FLOPs 250·12 + 4·100 = 3400)."""
    feature, rois = torch.zeros(1, 3, 10, 10), torch.tensor([[0.0, 0.0, 0.0, 9.0, 9.0]])
    for op in (OPS.roi_align, OPS.roi_align.default):
        assert function_cost(op, feature, rois, 1.0, 2, 2, 2, False).flops == 544
        assert function_cost(op, feature, rois, 1.0, 2, 2, -1, False).flops == 3400
    assert function_cost(torchvision.ops.roi_align, feature, rois, 2, 1.0, 2).flops == 544
    assert function_cost(torchvision.ops.roi_align, feature, rois, 2).flops == 3400


def test_roi_align_into_non_square_bins() -> None:
    """3 RoIs pooled into 2×5 bins of a 10×10 map, 4 channels (N_out 120). Adaptive:
    S = ⌈10/2⌉·⌈10/5⌉ = 10 samples per bin, 3·2·5·10 = 300 sample points: FLOPs 10·10·120 + 4·300 =
    13,200, MACs 3·10·120 = 3,600, DMAs 4·10·120 + 15 + 120 = 4,935. sampling_ratio 2: S = 4, 120
    points: FLOPs 40·120 + 480 = 5,280, MACs 1,440, DMAs 1,920 + 135 = 2,055."""
    out = spec(3, 4, 2, 5)
    adaptive = cost(torchvision.ops.roi_align, (FEATURE, ROIS), (out,), output_size=(2, 5), sampling_ratio=-1)
    assert adaptive == Cost(flops=13_200, macs=3600, dmas=4935)
    two = cost(torchvision.ops.roi_align, (FEATURE, ROIS), (out,), output_size=(2, 5), sampling_ratio=2)
    assert two == Cost(flops=5280, macs=1440, dmas=2055)


def test_roi_align_on_a_non_square_map() -> None:
    """A 6×10 map, 2×2 bins, N_out 48. Adaptive: S = ⌈6/2⌉·⌈10/2⌉ = 15 samples per bin, 180 sample
    points: FLOPs 10·15·48 + 4·180 = 7920, MACs 3·15·48 = 2160, DMAs 4·15·48 + 15 + 48 = 2943.
    sampling_ratio 3: S = 9, 108 points: FLOPs 90·48 + 432 = 4752, MACs 1296, DMAs 1728 + 63 = 1791."""
    feature = spec(1, 4, 6, 10)
    adaptive = cost(torchvision.ops.roi_align, (feature, ROIS), (POOLED,), output_size=2, sampling_ratio=-1)
    assert adaptive == Cost(flops=7920, macs=2160, dmas=2943)
    three = cost(torchvision.ops.roi_align, (feature, ROIS), (POOLED,), output_size=2, sampling_ratio=3)
    assert three == Cost(flops=4752, macs=1296, dmas=1791)


def test_roi_pool_bins() -> None:
    # bins of ⌈10/2⌉·⌈10/2⌉ = 25 elements; output and argmax written
    assert cost(torchvision.ops.roi_pool, (FEATURE, ROIS), (POOLED,), output_size=2) == Cost(
        flops=48 * 24, dmas=48 * 25 + 15 + 96
    )
    assert cost(OPS.ps_roi_pool, (spec(1, 16, 10, 10), ROIS), (POOLED, POOLED)) == Cost(
        flops=48 * 25, dmas=48 * 25 + 15 + 96
    )


def test_multiscale_roi_align() -> None:
    from torchvision.ops import poolers

    levels, boxes, out = [spec(1, 4, 16, 16), spec(1, 4, 8, 8)], [spec(6, 4)], spec(6, 4, 2, 2)  # N_out 96
    got = cost(
        poolers._multiscale_roi_align,
        (*levels, *boxes),
        (out,),
        x_filtered=levels,
        boxes=boxes,
        output_size=(2, 2),
        sampling_ratio=2,
    )
    align = Cost(flops=40 * 96 + 4 * 96, macs=12 * 96, dmas=16 * 96 + 30 + 96)
    assert got == align + Cost(flops=14 * 6, dmas=9 * 6 + 10 * 6 + 3 * 96)
    # one level: torchvision aligns on it directly (no level of each box, no scatter), only the RoI format
    one = cost(
        poolers._multiscale_roi_align,
        (levels[0], *boxes),
        (out,),
        x_filtered=levels[:1],
        boxes=boxes,
        output_size=(2, 2),
        sampling_ratio=2,
    )
    assert one == align + Cost(dmas=9 * 6)


def test_mvit_helpers() -> None:
    from torchvision.models.video import mvit

    x = spec(1, 2, 5, 8)
    assert cost(mvit._unsqueeze, (x,), (spec(1, 1, 2, 5, 8),), target_dim=5, expand_dim=1) == Cost()
    assert cost(mvit._add_shortcut, (x, x), (x,), residual_with_cls_embed=True) == Cost(flops=80, dmas=240)
    assert cost(mvit._add_shortcut, (x, x), (x,), residual_with_cls_embed=False) == Cost(flops=64, dmas=192)


def test_mvit_shortcut_on_any_rank() -> None:
    """With the class token the shortcut is one in-place add over all of x, whatever its rank
    (torch's ``x.add_(shortcut)``): 5×8, 40 adds, 3 DMAs each."""
    from torchvision.models.video import mvit

    x = torch.zeros(5, 8)
    mvit._add_shortcut(x, torch.ones(5, 8), True)
    assert cost(mvit._add_shortcut, (spec(5, 8), spec(5, 8)), (spec(5, 8),), residual_with_cls_embed=True) == Cost(
        flops=40, dmas=120
    )


def test_mvit_shortcut_on_the_class_token_alone() -> None:
    """One token (the class token) without its residual: torchvision adds over ``x[:, :, 1:, :]``,
    nothing; so 0 FLOPs and 0 DMAs."""
    from torchvision.models.video import mvit

    x = torch.zeros(2, 3, 1, 4)
    mvit._add_shortcut(x, torch.ones(2, 3, 1, 4), False)
    assert torch.equal(x, torch.zeros(2, 3, 1, 4))  # torch touched nothing
    one = spec(2, 3, 1, 4)
    assert cost(mvit._add_shortcut, (one, one), (one,), residual_with_cls_embed=False) == Cost()


def test_mvit_add_rel_pos_with_unequal_grids() -> None:
    """q over (t, h, w) = (1, 2, 3) and k over (2, 3, 1) (Q = K = 6 tokens after the class token),
    2 heads, c = 4, k_t + k_h + k_w = 6: products 2·6·6 = 72 of length 4 (288 MACs, as FlopCounterMode
    counts the three einsum/matmul products), 72·7 FLOPs + 3·2·6·6 for the sum and add = 720.
    DMAs: q read 3·2·6·4 = 144, the gathered tables read and written 2·(1·2 + 2·3 + 3·1)·4 = 88, the
    products 2·72 = 144, the sum and add 4·2·6·6 = 288: 664."""
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models.video import mvit

    attn, q = torch.zeros(1, 2, 7, 7), torch.rand(1, 2, 7, 4)
    tables = torch.rand(5, 4), torch.rand(5, 4), torch.rand(3, 4)  # 2·max(q, k) − 1 rows for h, w, t
    with FlopCounterMode(display=False) as counter:
        mvit._add_rel_pos(attn, q, (1, 2, 3), (2, 3, 1), *tables)
    got = cost(
        mvit._add_rel_pos,
        (spec(1, 2, 7, 7), spec(1, 2, 7, 4), spec(5, 4), spec(5, 4), spec(3, 4)),
        (spec(1, 2, 7, 7),),
        q_thw=(1, 2, 3),
        k_thw=(2, 3, 1),
    )
    assert 2 * got.macs == counter.get_total_flops() == 2 * 288
    assert got == Cost(flops=720, macs=288, dmas=664)


def test_mvit_add_rel_pos_macs_match_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models.video import mvit

    attn, q, table = torch.zeros(1, 2, 9, 9), torch.rand(1, 2, 9, 4), torch.rand(3, 4)
    with FlopCounterMode(display=False) as counter:
        mvit._add_rel_pos(attn, q, (2, 2, 2), (2, 2, 2), table, table, table)
    got = cost(
        mvit._add_rel_pos,
        (spec(1, 2, 9, 9), spec(1, 2, 9, 4), spec(3, 4), spec(3, 4), spec(3, 4)),
        (spec(1, 2, 9, 9),),
        q_thw=(2, 2, 2),
        k_thw=(2, 2, 2),
    )
    assert 2 * got.macs == counter.get_total_flops()
    # 2 heads, Q = K = 8, c = 4, k = 6: products 96·7, sum and add 3·2·8·8
    assert got.flops == 96 * 7 + 3 * 128


def test_fasterrcnn_mobilenet_is_complete() -> None:
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    report = crawl_module(model.eval(), (3, 128, 128))
    assert report.totals.complete, [d.message for d in report.diagnostics if d.code != "capture-fallback"]


def test_raft_small_is_complete() -> None:
    model = torchvision.models.optical_flow.raft_small(weights=None).eval()
    report = crawl_module(model, ((3, 128, 128), (3, 128, 128)))
    assert report.totals.complete, [d.message for d in report.diagnostics if d.code != "capture-fallback"]


@pytest.mark.slow
def test_mvit_v2_s_is_complete() -> None:
    model = torchvision.models.video.mvit_v2_s(weights=None).eval()
    report = crawl_module(model, (3, 16, 224, 224))
    assert report.totals.complete, [d.message for d in report.diagnostics]
