"""Op formulas: one registry, one file per op family.

Counting conventions (the single place they are stated in code; the README repeats them):

- A **MAC** is one fused multiply-add. A dot product of length ``k`` is ``k`` MACs and, as FLOPs,
  ``k`` multiplies + ``k − 1`` adds = ``2k − 1``; a bias add is one more FLOP per output.
- **FLOPs** count every elementary arithmetic operation (add, mul, div, compare, exp, sqrt…) on
  floating-point values; they are not ``2·MACs`` in general, both are reported.
- **DMAs** count element reads + element writes: inputs as many times as the formula reads
  them, parameters and buffers once, outputs once. Elements, not bytes.
- Views and metadata-only ops (view, permute, transpose, flatten, squeeze, getitem, size,
  ``nn.Identity``, ``nn.Flatten``, Dropout in eval) cost ``0 / 0 / 0``.
- An op without a formula is **unknown**: totals are partial (a lower bound) and a diagnostic
  names it — never a silent zero.
- Counts are for the forward pass in the model's current mode (``train``/``eval``).
- An in-place spelling (``x.add_(y)``, ``x.exp_()``, ``x.addmm_(a, b)``) costs what its op costs: its results,
  written over an input, are still written. The activations' and dropout's, ``clamp_`` and ``masked_fill_`` are
  the exception: ``N_out·[not inplace]``, as the published table counts ``relu_``.
- Comparisons (max, clamp, sort, topk) are FLOPs; selections (``where``, ``masked_fill``, gathers)
  and copies (pad, roll, casts to another dtype, pixel shuffle) are DMAs only; a cast to the
  same dtype is free; tensor factories write their output (``DMAs = N_out``).
- Transcendentals (exp, log, sqrt, erf, pow) count 1 FLOP per element; sigmoid 4, tanh 6,
  SiLU 5, GELU 5 (erf) or 14 (tanh approximation), Mish 10, Hardswish 5, Hardsigmoid 4,
  Softplus 6, LogSigmoid 7, PReLU 4 (its slopes read), GLU 5 per output, SELU 7, CELU 7, Threshold 1,
  Hardshrink 2, Softshrink 4, RReLU 4 (a scalar hyperparameter in their arithmetic, a slope, ``α``, ``λ``, is
  one element read; constants compared or selected are not; RReLU in training reads both bounds, its drawn
  slopes not counted, as Dropout's mask); a triangular solve is a
  substitution (``N_out·(n − 1)/2`` MACs, ``N_out·n`` FLOPs); softmax is numerically stable:
  ``5·N − 2·R`` (``R`` rows), log-softmax ``5·N − R``.
- Pools: a max ``N_out·(K − 1)`` comparisons (FractionalMaxPool's too, its random steps not counted), an average
  ``N_out·(K − 1 + d)``, both counted as MACs too; LPPool ``(Σ x^p)^{1/p}`` a power per input element, ``K − 1``
  adds (MACs) and a root per output; MaxUnpool is a scatter (``3·N_in + N_out`` DMAs); the ``*_with_indices``
  spellings count as the plain pools.
- Norms over ``R`` groups: ``6·N + 2·R + N·[weight] + N·[bias]`` FLOPs (LayerNorm, GroupNorm,
  InstanceNorm), RMSNorm ``4·N + 2·R + N·[weight]``; MACs ``N·(1 + [affine])``.
- Attention is counted from shapes (eval fast path or not): ``q kᵀ`` and ``attn v`` in full
  (causal too, as FlopCounterMode), scale, mask, softmax FLOPs; DMAs as a fused kernel (scores not
  materialised). nn.MultiheadAttention = its four projections (Linear formulas) + that core;
  nn.Transformer{Encoder,Decoder}{,Layer} are traced through (``TRACE_THROUGH``). ``flex_attention`` is one call
  (``AUTOWRAP_FUNCTIONS``): that core, dense, its ``score_mod`` and block mask one FLOP a score each.
- Bilinear is counted in torch's order (``x1`` with the weight first: ``N_out·k2·(k1 + 1)`` MACs); distances
  (``PairwiseDistance``, ``pdist``, ``cdist``) are a subtraction per element pair and a norm, ``cdist`` by matrix
  products where torch computes it so (``p = 2`` past 25 rows); ``CosineSimilarity`` normalises each operand first,
  as torch does (``8·N + R`` FLOPs, ``N`` MACs); their inputs are read once.
- Losses are their elementwise terms as torch computes them (L1 2, MSE 2, SmoothL1 and Huber 7, BCE 9,
  BCEWithLogits 10, KLDiv 3, SoftMargin 4, HingeEmbedding and MarginRanking 5 per element; cross-entropy a
  log-softmax and an NLL pick; the embedding and triplet losses their similarities and distances) plus the
  reduction: ``mean`` ``N`` FLOPs (``N − 1`` adds and a division), ``sum`` ``N − 1``, ``none`` 0. Not counted
  (unknown): CTC, MultiLabelMargin (their work depends on the targets' values), a custom triplet distance.
- einsum is its pairwise contraction left to right; ``add*mm`` add ``N_out`` FLOPs for the
  added term and one per output per non-unit scaling.
- RNN/LSTM/GRU: ``MACs = T·B·gates·H·(I + H)`` per layer and direction; both biases counted as
  adds; elementwise gate work 6 / 1 (RNN tanh / relu), 28 (LSTM), 19 (GRU) FLOPs per hidden unit.
- Interpolation reads ``taps`` inputs per output: nearest 1 (no FLOPs), d-linear ``2^d``
  (``2^d − 1`` lerps of 3 FLOPs / 1 MAC), bicubic 16 (35 FLOPs / 20 MACs).
- Optional libraries' functions (torchvision's fx-wrapped ops) come from a ``LazyTable``
  loaded once the library is imported: importing torchscan never imports them.
- Logical and bitwise ops (``&``, ``|``, ``^``, ``~``, ``logical_not``) and ``remainder`` count 1 FLOP
  per output element, like a comparison; ``any``/``all`` reduce with ``N_in − N_out`` FLOPs.
- ``meshgrid`` (expanded views), ``tensor_split``/``hsplit`` and MViT's ``_unsqueeze``/``_squeeze`` are
  views, free: whatever materialises a meshgrid output (a copying ``reshape``) pays its DMAs.
- ``unique`` is sort-based: ``N·⌈log2 n⌉ + N − s`` comparisons; ``histc`` bins directly: 6 FLOPs per
  element (+ a min/max pass when ``min = max``); ``one_hot`` writes its output (DMAs only).
- ``grid_sample`` blends taps as interpolate (bilinear ``2^d``, nearest 1, bicubic 16) plus 2 FLOPs
  per grid coordinate (and 2 / 4 to clip for border / reflection padding).
- Grouped matmul (``torch._grouped_mm``, MoE experts): one dot product per output element over its
  group's inner dim: ``MACs = N_out·K`` (``N_out·K/G`` for 2-D × 2-D), ``FLOPs = 2·MACs − N_out``.
- NMS on ``N`` boxes is its worst case (the CUDA kernel's work): sort ``N·⌈log2 N⌉``, areas ``3N``,
  13 FLOPs per pair for all ``N(N − 1)/2`` pairs.
- RoI align: ``S = sampling_ratio²`` samples per bin (adaptive: ``⌈H/ph⌉·⌈W/pw⌉``, an RoI spanning the
  map), each a bilinear blend per channel (9 FLOPs, 3 MACs), averaged (``S``); RoI pool / PS RoI
  pool take the max / mean of ``⌈H/ph⌉·⌈W/pw⌉`` elements per bin (FLOPs only, ``MACs = 0``).
- A parametrized module (``torch.nn.utils.parametrize``) counts as its base class (found along the
  MRO; a conv's weight shape is rebuilt from its config); the parametrization's own cost is not
  in the record and is not counted.
- ATen spellings (scripted models) count as their torch spelling: ``aten.native_batch_norm`` as
  BatchNorm, ``aten.max_pool2d_with_indices`` as MaxPool (indices not counted), ``aten.add_.Scalar``
  as an elementwise add.
- Random draws (``x.uniform_()``, ``torch.bernoulli(p)``, ``multinomial``, ``randint``…) count no arithmetic, as
  ``torch.rand`` does not: they write their output and read their tensor parameters (an in-place fill does not
  read the tensor it overwrites).
- Discrete Fourier transforms as FFTW rates them: ``5·P·log2 n`` FLOPs for a complex transform of ``n`` points
  (``P`` points in all, a batch), ``2.5·P·log2 n`` for a real one (``rfft*``, ``irfft*``, ``hfft*``), plus
  ``N_out`` where the direction is normalised; ``MACs = 0``.
- A short-time Fourier transform is its frames' transforms at those rates (``P = R·F·n_fft`` points), a product
  per point with a window, and the centre padding's copy; its inverse adds the window, the overlap-add and the
  envelope's division. A window function evaluates its formula per element (Hann 4 FLOPs, Blackman 8).
- Tests count as comparisons (``isnan`` 1, ``isinf`` 2, ``isfinite`` 4, ``isclose`` 6), ``logaddexp`` is computed
  stably (7); ``diagonal``, ``adjoint``, ``real``/``imag`` and the lazy ``conj`` are views, flips and rotations
  copies; ``inner``/``vdot`` are dot products (MACs), ``kron``/``addr``/``outer`` products without sums, a cross
  product 3 FLOPs per output element.
- Selections (``median``, ``kthvalue``) are a quickselect, 2 comparisons an element; ``mode`` and ``quantile`` sort
  (``N·⌈log2 L⌉``) first; ``logcumsumexp`` is a running stable ``logaddexp`` (7); Gumbel-softmax its noise (the
  draw's log and negation), scaling and softmax.
- Determinants, inverses, solves and Cholesky are the textbook algorithms counted exactly (an LU with partial
  pivoting ``2n³/3`` leading; torch's inverse a solve with the identity, ``8n³/3``; Cholesky ``n³/3``); eigen- and
  singular-value decompositions are iterative and left unknown.
- Scatter-adds (``index_add``, ``scatter_add``) cost one add per source element; DMAs read the
  index and source, read and write each destination element, and copy the destination first when
  not in place.

Every formula's docstring gives its closed form with ``N_in``/``N_out`` (input/output elements),
``K`` (product of kernel sizes), ``g`` (groups), ``d`` (spatial dims), ``P`` (parameter elements)
and ``[x]`` (1 if x else 0). These reproduce the published torchscan table for the torchvision
classifiers within 1% while also counting the functional calls module hooks never saw.
"""

from torchscan.ops import (
    activation,
    attention,
    conv,
    decompose,
    distance,
    dropout,
    elementwise,
    embedding,
    linear,
    loss,
    norm,
    pool,
    recurrent,
    reduce,
    sampling,
    shape,
    spectral,
    torchvision_ops,
    upsample,
)
from torchscan.ops.registry import (
    DuplicateFormulaError,
    Formula,
    FormulaTable,
    LazyTable,
    OpLookup,
    OpTable,
    Registry,
    SavedExtra,
    Saves,
    Workspace,
)

__all__ = [
    "AUTOWRAP_FUNCTIONS",
    "DEFAULT_REGISTRY",
    "OBJECT_RESULTS",
    "TRACE_THROUGH",
    "DuplicateFormulaError",
    "Formula",
    "FormulaTable",
    "LazyTable",
    "OpLookup",
    "OpTable",
    "Registry",
    "SavedExtra",
    "Saves",
    "Workspace",
]

DEFAULT_REGISTRY = Registry.from_tables(
    conv.TABLE,
    linear.TABLE,
    norm.TABLE,
    pool.TABLE,
    activation.TABLE,
    dropout.TABLE,
    elementwise.TABLE,
    shape.TABLE,
    reduce.TABLE,
    attention.TABLE,
    recurrent.TABLE,
    embedding.TABLE,
    upsample.TABLE,
    sampling.TABLE,
    spectral.TABLE,
    distance.TABLE,
    decompose.TABLE,
    loss.TABLE,
    lazy=(LazyTable("torchvision", torchvision_ops.load),),
)

TRACE_THROUGH = attention.TRACE_THROUGH | loss.TRACE_THROUGH
"""torch.nn built-in modules the tracer enters instead of keeping as leaves (no formula of their own)."""

AUTOWRAP_FUNCTIONS = attention.AUTOWRAP_FUNCTIONS
"""Functions the tracer records as single calls so that it can enter the ``TRACE_THROUGH`` modules."""

OBJECT_RESULTS = attention.OBJECT_RESULTS
"""Calls counted though their result is an object, not a tensor (``create_block_mask``'s ``BlockMask``)."""
