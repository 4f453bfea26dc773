"""Hypothesis strategies: random small nets with skip connections, and their inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn


class RandomNet(nn.Module):
    """A chain of blocks; each block is conv-bn-act, optionally with a residual add or a concat branch."""

    def __init__(self, in_channels: int, blocks: list[tuple[str, int, int, int, bool]], classes: int) -> None:
        super().__init__()
        self.kinds = [kind for kind, *_ in blocks]
        layers = nn.ModuleList()
        channels = in_channels
        for kind, out_channels, kernel, stride, bias in blocks:
            if kind == "residual":
                layers.append(
                    nn.Sequential(
                        nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=bias),
                        nn.BatchNorm2d(channels),
                        nn.ReLU(),
                    )
                )
            elif kind == "concat":
                layers.append(
                    nn.ModuleList(
                        [
                            nn.Conv2d(channels, out_channels, 1, bias=bias),
                            nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2, bias=bias),
                        ]
                    )
                )
                channels = 2 * out_channels
                continue
            elif kind == "pool":
                layers.append(nn.MaxPool2d(kernel, stride=stride, padding=kernel // 2, ceil_mode=True))
                continue
            else:
                layers.append(
                    nn.Sequential(
                        nn.Conv2d(channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=bias),
                        nn.BatchNorm2d(out_channels),
                        nn.ReLU6(inplace=True),
                    )
                )
                channels = out_channels
        self.blocks = layers
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, block in zip(self.kinds, self.blocks, strict=True):
            if kind == "residual":
                x = x + block(x)
            elif kind == "concat":
                x = torch.cat([block[0](x), F.relu(block[1](x))], dim=1)
            else:
                x = block(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.head(torch.flatten(x, 1))


@st.composite
def random_nets(draw: st.DrawFn) -> tuple[RandomNet, tuple[int, int, int]]:
    """A random :class:`RandomNet` (eval mode) and a valid input shape without batch dim."""
    in_channels = draw(st.integers(1, 4))
    size = draw(st.integers(8, 24))
    blocks = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["plain", "residual", "concat", "pool"]),
                st.integers(1, 8),
                st.sampled_from([1, 3, 5]),
                st.integers(1, 2),
                st.booleans(),
            ),
            min_size=1,
            max_size=5,
        )
    )
    net = RandomNet(in_channels, blocks, draw(st.integers(1, 5)))
    return net.train(draw(st.booleans())), (in_channels, size, size)
