# Copyright (c) sanet-mmseg contributors. All rights reserved.
import torch.nn as nn
from torch import Tensor

from mmseg.models.utils import resize

OUTPUTS = ('logits', 'logits_full', 'labels')


class SegmentorOutput(nn.Module):
    """A segmentor as one tensor function, for export, analysis and timing.

    Args:
        model (nn.Module): An ``EncoderDecoder`` (prepared for inference or
            not), in eval mode.
        output (str): What ``forward`` returns. ``'logits'``: the network's
            logits (N, C, H/8, W/8); ``'logits_full'``: the logits resized
            to the input (N, C, H, W); ``'labels'``: int64 labels at the
            input size (N, H, W). Default: 'logits'.
    """

    def __init__(self, model: nn.Module, output: str = 'logits'):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got '
                             f'{output!r}')
        self.model = model
        self.output = output

    def forward(self, x: Tensor) -> Tensor:
        """Args:
            x (Tensor): Normalised images (N, 3, H, W), float32.

        Returns:
            Tensor: Logits or labels, as ``output`` says.
        """
        logits = self.model._forward(x)
        if self.output == 'logits':
            return logits
        logits = resize(
            logits,
            size=x.shape[2:],
            mode='bilinear',
            align_corners=self.model.decode_head.align_corners)
        return logits if self.output == 'logits_full' else logits.argmax(1)
