"""What every task's micro-batch shares: padded tensors that move to a device together."""

from __future__ import annotations

from dataclasses import fields, replace

import torch


class TensorBatch:
    """Mixin for task batch dataclasses with an ``input_ids`` field."""

    input_ids: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def to(self, device: torch.device | str):
        moved = {
            f.name: value.to(device, non_blocking=True)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)
