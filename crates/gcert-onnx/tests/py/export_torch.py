"""Small random PyTorch models exported with torch.onnx.export, for tests/pytorch.rs.

usage: export_torch.py OUT_DIR

For each model NAME writes NAME.onnx (f64 weights), NAME-x.npy (random inputs, one per row, flat) and
NAME-y.npy (PyTorch's outputs in f64, one per row, flat), and prints NAME per line. Each model is exported twice:
with the exporter's constant folding (NAME), and without it and with a symbolic batch axis (NAME-raw:
BatchNormalization nodes, Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains and Constant nodes stay).
"""
import os
import sys

import numpy as np
import torch
from torch import nn


class Classifier(nn.Module):
    """Input normalisation, conv, batch norm, leaky relu, max and average pooling, a view through x.size(0)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        )
        self.head = nn.Sequential(nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10))

    def forward(self, x):
        x = (x - 0.1307) / 0.3081
        x = self.features(x)
        return self.head(x.view(x.size(0), -1))


class Generator(nn.Module):
    """Latent to image: linear, unflatten, transposed convolutions with batch norm, leaky relu, hard tanh."""

    def __init__(self):
        super().__init__()
        # nn.Unflatten exports as a Shape -> Mod -> Slice -> Concat -> Reshape chain.
        self.fc = nn.Sequential(nn.Linear(6, 8 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (8, 4, 4)))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1), nn.Hardtanh(),
        )

    def forward(self, z):
        return self.up(self.fc(z))


class Smooth(nn.Module):
    """Sigmoid, tanh, clamp and global average pooling (not piecewise linear: evaluation only)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, stride=2)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        x = torch.sigmoid(self.conv(x))
        x = torch.clamp(x, 0.2, 0.9)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return torch.tanh(self.fc(x))


def randomise_batch_norm(model, gen):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.2)


def main():
    out = sys.argv[1]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    models = {
        "classifier": (Classifier(), (1, 1, 16, 16)),
        "generator": (Generator(), (1, 6)),
        "smooth": (Smooth(), (1, 3, 9, 9)),
    }
    for name, (model, shape) in models.items():
        model = model.double().eval()
        randomise_batch_norm(model, gen)
        x = torch.rand((8,) + shape[1:], generator=gen, dtype=torch.float64) * 2 - 1
        with torch.no_grad():
            y = model(x)
        for suffix, folding in [("", True), ("-raw", False)]:
            path = os.path.join(out, f"{name}{suffix}.onnx")
            # The raw export also has a symbolic batch axis, so x.size(0) stays a Shape -> Gather chain.
            dynamic = None if folding else {"input": {0: "batch"}, "output": {0: "batch"}}
            torch.onnx.export(model, (torch.zeros(shape, dtype=torch.float64),), path, dynamo=False,
                              do_constant_folding=folding, input_names=["input"], output_names=["output"],
                              dynamic_axes=dynamic)
            np.save(os.path.join(out, f"{name}{suffix}-x.npy"), x.reshape(8, -1).numpy())
            np.save(os.path.join(out, f"{name}{suffix}-y.npy"), y.reshape(8, -1).numpy())
            print(f"{name}{suffix}")


main()
