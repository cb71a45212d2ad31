"""Build the official pycls 0.1.1 RegNet or AnyNet for a config, for parity tests.

pycls's wheel ships no YAML configs, so ``cfg.REGNET.*`` (``cfg.ANYNET.*``) is
set from our ``RegNetConfig`` (``AnyNetConfig``).

Tests import this module with ``conftest.require("pycls_reference")``: if
torch or pycls is missing, the import error names it and the test fails.
"""

import numpy as np
import pycls.core.config as pycls_config
import pycls.models.anynet as pycls_anynet
import pycls.models.regnet as pycls_regnet
import torch

from keras_regnet.architecture.config import AnyNetConfig
from keras_regnet.architecture.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from keras_regnet.weights.convert.torch_state import torch_module_name


def set_pycls_cfg(config, num_classes=1000):
    cfg = pycls_config.cfg
    cfg.MODEL.TYPE = "regnet"
    cfg.MODEL.NUM_CLASSES = num_classes
    cfg.REGNET.STEM_TYPE = "simple_stem_in" if config.stem_stride == 2 else "res_stem_cifar"
    cfg.REGNET.STEM_W = config.stem_width
    cfg.REGNET.BLOCK_TYPE = "res_bottleneck_block"
    cfg.REGNET.STRIDE = 2
    cfg.REGNET.DEPTH = config.depth
    cfg.REGNET.W0 = config.w0
    cfg.REGNET.WA = config.wa
    cfg.REGNET.WM = config.wm
    cfg.REGNET.GROUP_W = config.group_width
    cfg.REGNET.BOT_MUL = config.bottleneck_ratio
    cfg.REGNET.SE_ON = config.has_se
    cfg.REGNET.SE_R = config.se_ratio or 0.25
    cfg.BN.EPS = 1e-5
    cfg.BN.MOM = 0.1
    return cfg


def set_pycls_anynet_cfg(config: AnyNetConfig, num_classes=1000):
    """pycls's global cfg set to an AnyNet: residual bottleneck blocks, simple_stem_in or res_stem_cifar."""
    cfg = pycls_config.cfg
    cfg.MODEL.TYPE = "anynet"
    cfg.MODEL.NUM_CLASSES = num_classes
    cfg.ANYNET.STEM_TYPE = "simple_stem_in" if config.stem_stride == 2 else "res_stem_cifar"
    cfg.ANYNET.STEM_W = config.stem_width
    cfg.ANYNET.BLOCK_TYPE = "res_bottleneck_block"
    cfg.ANYNET.DEPTHS, cfg.ANYNET.WIDTHS = list(config.depths), list(config.widths)
    cfg.ANYNET.STRIDES, cfg.ANYNET.BOT_MULS = list(config.strides), list(config.bottleneck_ratios)
    cfg.ANYNET.GROUP_WS = list(config.group_widths)
    cfg.ANYNET.SE_ON, cfg.ANYNET.SE_R = config.has_se, config.se_ratio or 0.25
    cfg.BN.EPS = 1e-5
    cfg.BN.MOM = 0.1
    return cfg


def pycls_model(config, num_classes=1000, seed=0):
    """A pycls RegNet (or AnyNet, for an AnyNetConfig) in eval mode whose every parameter and BN statistic is random."""
    torch.manual_seed(seed)
    if isinstance(config, AnyNetConfig):
        set_pycls_anynet_cfg(config, num_classes)
        model = pycls_anynet.AnyNet()
    else:
        set_pycls_cfg(config, num_classes)
        model = pycls_regnet.RegNet()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bn.bias") or "_bn.bias" in name:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif name.endswith("bn.weight") or "_bn.weight" in name:
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else t.shape[0]
                t.copy_(torch.randn(t.shape, generator=gen) / np.sqrt(fan_in))
    return model.eval()


def pycls_complexity(config, resolution=224, num_classes=1000):
    """pycls's own count: RegNet.complexity (AnyNet.complexity for an AnyNetConfig), under a cfg set for it."""
    cx = {"h": resolution, "w": resolution, "flops": 0, "params": 0, "acts": 0}
    if isinstance(config, AnyNetConfig):
        set_pycls_anynet_cfg(config, num_classes)
        return pycls_anynet.AnyNet.complexity(cx)
    set_pycls_cfg(config, num_classes)
    return pycls_regnet.RegNet.complexity(cx)


def pycls_logits(model, rgb_images):
    """pycls's view of RGB [0, 255] NHWC images: normalised, BGR, NCHW."""
    x = (rgb_images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    x = np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
    with torch.no_grad():
        return model(torch.from_numpy(x)).float().numpy()  # float(): under autocast the head answers bfloat16


def state_numpy(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def pycls_state_of(keras_model):
    """A Keras RegNet's weights as a pycls ``state_dict`` (torch tensors): ``set_torch_state``'s inverse."""
    state = {}
    for layer in keras_model.layers:
        module, values = torch_module_name(layer.name), [np.asarray(v) for v in layer.get_weights()]
        if not values:
            continue
        if layer.__class__.__name__ == "BatchNormalization":
            state.update({f"{module}.{p}": v for p, v in zip(("weight", "bias", "running_mean", "running_var"), values)})
            continue
        kernel = values[0]
        if kernel.ndim == 4:
            kernel = kernel[:, :, ::-1, :] if layer.name == "stem_conv" else kernel  # RGB -> pycls's BGR
            kernel = kernel.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        state[f"{module}.weight"] = kernel if kernel.ndim == 4 else kernel.T
        state.update({f"{module}.bias": values[1]} if len(values) > 1 else {})
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
