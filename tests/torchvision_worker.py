"""Run under an interpreter that has torchvision (not a test dependency).

Usage: python torchvision_worker.py BUILDER OUT_DIR SEED
Builds torchvision.models.BUILDER(weights=None) with every parameter and BN
statistic random, saves its state dict (torch.save) and, for a fixed RGB
[0, 255] batch, torchvision's logits with its own ImageNet normalisation.
"""

import sys

import numpy as np
import torch
import torchvision

builder, out_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(seed)
model = getattr(torchvision.models, builder)(weights=None).eval()
with torch.no_grad():
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape) + 0.5)
        elif t.ndim == 1:
            t.copy_(torch.randn(t.shape) * 0.1 + (1.0 if name.endswith(".1.weight") else 0.0))
        else:
            t.copy_(torch.randn(t.shape) / np.sqrt(np.prod(t.shape[1:])))
torch.save(model.state_dict(), f"{out_dir}/{builder}.pth")
x = np.random.default_rng(seed).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
t = torch.from_numpy(((x / 255.0 - mean) / std).transpose(0, 3, 1, 2).astype("float32"))
with torch.no_grad():
    logits = model(t).numpy()
np.savez(f"{out_dir}/{builder}.npz", x=x, logits=logits)
