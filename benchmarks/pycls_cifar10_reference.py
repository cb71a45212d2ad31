"""pycls 0.1.1's own trainer on a CIFAR-10 subset, on the CPU: the reference of docs/results.md.

Runs pycls's functions in the order of its ``trainer.train_model``: per epoch
``trainer.train_epoch`` (which sets the epoch's learning rate with
``get_epoch_lr``/``set_lr``), ``net.compute_precise_bn_stats``,
``checkpoint.save_checkpoint``, ``trainer.test_epoch``; the model is
``builders.build_model()`` (its RegNet with ``res_stem_cifar``), the
optimizer ``construct_optimizer``, the data pycls's own CIFAR-10 loader and
transforms (flip, pad-4 random crop), over the arrays of
``benchmarks/cifar_subset.py``.

What the driver changes, and why:

* pycls 0.1.1 assumes CUDA: ``.cuda()`` returns its receiver, one "device"
  is reported, the GPU-memory meter reads 0; and torch 2's weights-only
  ``torch.load`` is told that numpy scalars in its checkpoints are data;
* ``Cifar10._load_data`` reads the subset's ``.npz`` arrays (no pickle
  allowed, ``allow_pickle=False``) instead of CIFAR's pickle batches; its
  transforms (``_prepare_im``) are pycls's;
* its ``meters.topk_errors`` calls ``.view()`` on a non-contiguous tensor,
  which torch 2 refuses: replaced by the same computation with
  ``reshape`` (it only feeds the logged errors);
* input normalisation: pycls's CIFAR mean/std constants are replaced by the
  ImageNet mean/std (x 255, RGB order like the arrays) that keras_regnet's
  models apply, so both trainers see the same normalised pixels (and pycls's
  zero padding after normalisation is that mean colour);
* its epoch loop is this file's, for a time budget (``--time-budget``: stop
  after an epoch when the next would not fit) and a ``log.csv`` with one row
  per epoch; pycls's ``AUTO_RESUME`` checkpoints make the same command
  continue after a stop or a kill.

    python benchmarks/cifar_subset.py --out /tmp/cifar_subset
    python benchmarks/pycls_cifar10_reference.py --data /tmp/cifar_subset/pycls \\
        --output-dir runs/pycls_cifar --epochs 100 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

import numpy as np
import torch

import pycls.core.builders as builders
import pycls.core.checkpoint as checkpoint
import pycls.core.meters as meters
import pycls.core.net as net
import pycls.core.optimizer as optim
import pycls.core.trainer as trainer
import pycls.datasets.cifar10 as cifar10
import pycls.datasets.loader as loader
from pycls.core.config import cfg

# keras_regnet.architecture.preprocessing's constants, on pycls's 0-255 scale.
IMAGENET_MEAN_255 = [0.485 * 255, 0.456 * 255, 0.406 * 255]
IMAGENET_STD_255 = [0.229 * 255, 0.224 * 255, 0.225 * 255]
REGNETX_200MF = dict(DEPTH=13, W0=24, WA=36.44, WM=2.49, GROUP_W=8)
LOG_FIELDS = ["epoch", "lr", "loss", "train_top1_err", "val_top1_err", "val_top5_err", "epoch_s"]


def topk_errors(preds, labels, ks):
    """Top-k errors in percent (pycls 0.1.1's meter, with ``reshape`` where torch 2 refuses ``view``)."""
    top = torch.topk(preds, max(ks), dim=1, largest=True, sorted=True).indices.t()
    correct = top.eq(labels.view(1, -1).expand_as(top))
    return [(1.0 - correct[:k].reshape(-1).float().sum() / preds.size(0)) * 100.0 for k in ks]


def load_subset(dataset):
    """``Cifar10._load_data`` for ``benchmarks/cifar_subset.py``'s arrays: (float32 NCHW inputs, labels)."""
    arrays = np.load(os.path.join(dataset._data_path, f"{dataset._split}.npz"), allow_pickle=False)
    inputs = arrays["data"].astype(np.float32).reshape((-1, 3, cfg.TRAIN.IM_SIZE, cfg.TRAIN.IM_SIZE))
    return inputs, [int(v) for v in arrays["labels"]]


def run_on_cpu() -> None:
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.device_count = lambda: 1
    torch.cuda.current_device = lambda: 0
    meters.gpu_mem_usage = lambda: 0
    meters.topk_errors = topk_errors
    # pycls's checkpoints hold numpy scalars (its float learning rate); torch 2's
    # weights-only loader refuses them unless listed: list them, run no code.
    torch.serialization.add_safe_globals([np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType])
    cifar10._MEAN, cifar10._SD = IMAGENET_MEAN_255, IMAGENET_STD_255
    cifar10.Cifar10._load_data = load_subset


def configure(args) -> None:
    cfg.MODEL.TYPE, cfg.MODEL.NUM_CLASSES = "regnet", 10
    cfg.REGNET.STEM_TYPE, cfg.REGNET.STEM_W = "res_stem_cifar", 32
    for key, value in (args.regnet or REGNETX_200MF).items():
        setattr(cfg.REGNET, key, value)
    cfg.TRAIN.DATASET = cfg.TEST.DATASET = "cifar10"
    cfg.TRAIN.SPLIT, cfg.TEST.SPLIT = "train", "test"
    cfg.TRAIN.IM_SIZE = cfg.TEST.IM_SIZE = 32
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = args.batch_size
    cfg.OPTIM.BASE_LR, cfg.OPTIM.LR_POLICY, cfg.OPTIM.MAX_EPOCH = 0.1 * args.batch_size / 128, "cos", args.epochs
    cfg.OPTIM.MOMENTUM, cfg.OPTIM.NESTEROV, cfg.OPTIM.WEIGHT_DECAY = 0.9, True, 5e-5
    cfg.OPTIM.WARMUP_EPOCHS, cfg.OPTIM.WARMUP_FACTOR = args.warmup_epochs, 0.1
    cfg.BN.USE_PRECISE_STATS, cfg.BN.NUM_SAMPLES_PRECISE = True, 8192
    cfg.NUM_GPUS, cfg.RNG_SEED, cfg.OUT_DIR = 1, args.seed, args.output_dir
    cfg.DATA_LOADER.NUM_WORKERS, cfg.DATA_LOADER.PIN_MEMORY = 0, False  # in-memory CIFAR: no worker needed
    cfg.TRAIN.AUTO_RESUME, cfg.TRAIN.CHECKPOINT_PERIOD, cfg.TRAIN.EVAL_PERIOD = True, 1, 1
    cfg.LOG_DEST, cfg.LOG_PERIOD = "file", 1000
    loader._DATA_DIR = os.path.dirname(os.path.abspath(args.data))
    loader._PATHS["cifar10"] = os.path.basename(os.path.abspath(args.data))


def capture_epoch_stats(meter, into: dict):
    """Keep the meter's epoch statistics (pycls resets the meter right after logging them)."""
    log = meter.log_epoch_stats

    def log_and_keep(cur_epoch):
        into.update(meter.get_epoch_stats(cur_epoch))
        log(cur_epoch)

    meter.log_epoch_stats = log_and_keep


def read_log(path, before_epoch: int) -> list:
    """Rows of epochs before ``before_epoch`` (later ones were not checkpointed: they run again)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= before_epoch]


def write_log(path, rows) -> None:
    tmp = path + ".part"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def resume(model, optimizer) -> int:
    """The first epoch to run: after pycls's last checkpoint, if any."""
    if not checkpoint.has_checkpoint():
        return 0
    return checkpoint.load_checkpoint(checkpoint.get_last_checkpoint(), model, optimizer) + 1


def out_of_time(args, start, epoch_times) -> bool:
    if args.time_budget is None or not epoch_times:
        return False
    return time.monotonic() - start + 1.1 * max(epoch_times[-3:]) > args.time_budget


def train_epochs(args, model, optimizer, first_epoch, rows, log_path) -> None:
    loss_fun = builders.build_loss_fun().cuda()
    train_loader, test_loader = loader.construct_train_loader(), loader.construct_test_loader()
    train_meter, test_meter = meters.TrainMeter(len(train_loader)), meters.TestMeter(len(test_loader))
    train_stats, test_stats = {}, {}
    capture_epoch_stats(train_meter, train_stats)
    capture_epoch_stats(test_meter, test_stats)
    start, epoch_times = time.monotonic(), []
    for cur_epoch in range(first_epoch, cfg.OPTIM.MAX_EPOCH):
        if out_of_time(args, start, epoch_times):
            print(f"stopping for the time budget after epoch {cur_epoch}; run the same command to continue")
            return
        tic = time.monotonic()
        trainer.train_epoch(train_loader, model, loss_fun, optimizer, train_meter, cur_epoch)
        net.compute_precise_bn_stats(model, train_loader)
        trainer.test_epoch(test_loader, model, test_meter, cur_epoch)
        epoch_times.append(time.monotonic() - tic)
        rows.append(dict(
            epoch=cur_epoch + 1, lr=train_stats["lr"], loss=train_stats["loss"], train_top1_err=train_stats["top1_err"],
            val_top1_err=test_stats["top1_err"], val_top5_err=test_stats["top5_err"], epoch_s=round(epoch_times[-1], 2),
        ))
        write_log(log_path, rows)  # before the checkpoint: a kill in between reruns this epoch, logged once
        checkpoint.save_checkpoint(model, optimizer, cur_epoch)
        print(f"epoch {cur_epoch + 1}/{cfg.OPTIM.MAX_EPOCH}: val top-1 err {test_stats['top1_err']:.2f}% "
              f"({epoch_times[-1]:.1f} s)", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the pycls/ folder of benchmarks/cifar_subset.py")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--warmup-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-budget", type=float, metavar="SECONDS")
    p.add_argument("--regnet", type=json.loads, help='REGNET overrides as JSON, e.g. \'{"DEPTH": 4, "W0": 16}\'')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    run_on_cpu()
    configure(args)
    torch.set_num_threads(args.threads)
    os.makedirs(args.output_dir, exist_ok=True)
    trainer.setup_env()  # pycls: output dir, config dump, logging, np/torch seeds
    model = trainer.setup_model()
    optimizer = optim.construct_optimizer(model)
    first_epoch = resume(model, optimizer)
    log_path = os.path.join(args.output_dir, "log.csv")
    rows = read_log(log_path, first_epoch)
    wall = time.monotonic()
    train_epochs(args, model, optimizer, first_epoch, rows, log_path)
    results = dict(
        epochs_done=len(rows), complete=len(rows) == args.epochs,
        final_val_top1_accuracy=1 - float(rows[-1]["val_top1_err"]) / 100 if rows else None,
        best_val_top1_accuracy=max(1 - float(r["val_top1_err"]) / 100 for r in rows) if rows else None,
        wall_s_this_call=time.monotonic() - wall, total_epoch_s=sum(float(r["epoch_s"]) for r in rows),
        threads=args.threads, seed=args.seed, batch_size=args.batch_size,
    )
    with open(os.path.join(args.output_dir, "results.json.part"), "w") as f:
        json.dump(results, f, indent=2)
    os.replace(os.path.join(args.output_dir, "results.json.part"), os.path.join(args.output_dir, "results.json"))
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
