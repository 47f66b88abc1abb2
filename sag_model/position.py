"""Position encodings: the 2-D sine encoding of the slot context (spec A.3) and the learned
row/column table of the reconstruction decoder (spec A.5)."""

import math

import torch
from torch import nn


def sine_position_encoding(height: int, width: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's normalised 2-D sine encoding, [height*width, dim], row-major.

    Half the channels encode the row, half the column; within each half channels alternate
    sin (even k) and cos (odd k) of (index / size * 2pi) / temperature^(2*floor(k/2)/half).
    """
    if dim % 4:
        raise ValueError(f"sine position encoding needs dim divisible by 4, got {dim}")
    half = dim // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32) / height * 2 * math.pi   # [h]
    cols = torch.arange(1, width + 1, dtype=torch.float32) / width * 2 * math.pi     # [w]
    k = torch.arange(half, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)       # [half]
    pos_y = rows[:, None] / freq                                                     # [h, half]
    pos_x = cols[:, None] / freq                                                     # [w, half]
    pos_y = torch.where(k.long() % 2 == 0, pos_y.sin(), pos_y.cos())
    pos_x = torch.where(k.long() % 2 == 0, pos_x.sin(), pos_x.cos())
    grid = torch.cat([pos_y[:, None, :].expand(height, width, half),
                      pos_x[None, :, :].expand(height, width, half)], dim=-1)        # [h, w, dim]
    return grid.reshape(height * width, dim)


class LearnedPosition2d(nn.Module):
    """Learned row and column tables (U(0,1) init), concatenated (column, row) per position."""

    def __init__(self, dim: int, max_size: int = 50):
        super().__init__()
        if dim % 2:
            raise ValueError(f"learned 2-D position needs an even dim, got {dim}")
        self.max_size = max_size
        self.row = nn.Embedding(max_size, dim // 2)
        self.col = nn.Embedding(max_size, dim // 2)
        nn.init.uniform_(self.row.weight)
        nn.init.uniform_(self.col.weight)

    def forward(self, height: int, width: int) -> torch.Tensor:
        """[height*width, dim], row-major."""
        if max(height, width) > self.max_size:
            raise ValueError(f"grid {height}x{width} exceeds the learned position table ({self.max_size})")
        device = self.row.weight.device
        rows = self.row(torch.arange(height, device=device))                  # [h, dim/2]
        cols = self.col(torch.arange(width, device=device))                   # [w, dim/2]
        grid = torch.cat([cols[None, :, :].expand(height, width, -1),
                          rows[:, None, :].expand(height, width, -1)], dim=-1)  # [h, w, dim]
        return grid.reshape(height * width, -1)
