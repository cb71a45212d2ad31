"""Regenerate keras_regnet/weights/manifest.json (a developer tool).

    python weights/build_manifest.py

Sources and facts:
* pycls: checkpoint URLs and published top-1/top-5 error from the pycls model
  zoo (keras_regnet/architecture/regnet_zoo.json). pycls publishes no checksums.
* tf-keras: the .h5 URLs and SHA-256 values published in tf-keras's
  ``tf_keras/src/applications/regnet.py`` (read from the installed
  tf-keras 2.21.0); tf-keras publishes no accuracies for its RegNets.
* torchvision: builder arguments, checkpoint URLs (whose 8-hex suffix is the
  start of the file's SHA-256, as torch.hub checks it) and acc@1/acc@5 from
  torchvision's ``models/regnet.py`` (TORCHVISION below).  torchvision rounds
  stage widths half up (``_make_divisible``) where pycls rounds half to even,
  so some of its models have other widths; those are marked incompatible.
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/regnet/"


TORCHVISION_BASE = "https://download.pytorch.org/models/"
# pycls name -> (torchvision builder args (depth, w0, wa, wm, group_width),
#                {weights name: (file, acc@1, acc@5)})
TORCHVISION = {
    "RegNetY-400MF": ((16, 48, 27.89, 2.09, 8), {
        "v1": ("regnet_y_400mf-c65dace8.pth", 74.046, 91.716), "v2": ("regnet_y_400mf-e6988f5f.pth", 75.804, 92.742)}),
    "RegNetY-800MF": ((14, 56, 38.84, 2.4, 16), {
        "v1": ("regnet_y_800mf-1b27b58c.pth", 76.420, 93.136), "v2": ("regnet_y_800mf-58fc7688.pth", 78.828, 94.502)}),
    "RegNetY-1.6GF": ((27, 48, 20.71, 2.65, 24), {
        "v1": ("regnet_y_1_6gf-b11a554e.pth", 77.950, 93.966), "v2": ("regnet_y_1_6gf-0d7bc02a.pth", 80.876, 95.444)}),
    "RegNetY-3.2GF": ((21, 80, 42.63, 2.66, 24), {
        "v1": ("regnet_y_3_2gf-b5a9779c.pth", 78.948, 94.576), "v2": ("regnet_y_3_2gf-9180c971.pth", 81.982, 95.972)}),
    "RegNetY-8.0GF": ((17, 192, 76.82, 2.19, 56), {
        "v1": ("regnet_y_8gf-d0d0e4a8.pth", 80.032, 95.048), "v2": ("regnet_y_8gf-dc2b1b54.pth", 82.828, 96.330)}),
    "RegNetY-16GF": ((18, 200, 106.23, 2.48, 112), {
        "v1": ("regnet_y_16gf-9e6ed7dd.pth", 80.424, 95.240), "v2": ("regnet_y_16gf-3e4a00f9.pth", 82.886, 96.328)}),
    "RegNetY-32GF": ((20, 232, 115.89, 2.53, 232), {
        "v1": ("regnet_y_32gf-4dee3f7a.pth", 80.878, 95.340), "v2": ("regnet_y_32gf-8db6d4b5.pth", 83.368, 96.498)}),
    "RegNetX-400MF": ((22, 24, 24.48, 2.54, 16), {
        "v1": ("regnet_x_400mf-adf1edd5.pth", 72.834, 90.950), "v2": ("regnet_x_400mf-62229a5f.pth", 74.864, 92.322)}),
    "RegNetX-800MF": ((16, 56, 35.73, 2.28, 16), {
        "v1": ("regnet_x_800mf-ad17e45c.pth", 75.212, 92.348), "v2": ("regnet_x_800mf-94a99ebd.pth", 77.522, 93.826)}),
    "RegNetX-1.6GF": ((18, 80, 34.01, 2.25, 24), {
        "v1": ("regnet_x_1_6gf-e3633e7f.pth", 77.040, 93.440), "v2": ("regnet_x_1_6gf-a12f2b72.pth", 79.668, 94.922)}),
    "RegNetX-3.2GF": ((25, 88, 26.31, 2.25, 48), {
        "v1": ("regnet_x_3_2gf-f342aeae.pth", 78.364, 93.992), "v2": ("regnet_x_3_2gf-7071aa85.pth", 81.196, 95.430)}),
    "RegNetX-8.0GF": ((23, 80, 49.56, 2.88, 120), {
        "v1": ("regnet_x_8gf-03ceed89.pth", 79.344, 94.686), "v2": ("regnet_x_8gf-2b70d774.pth", 81.682, 95.678)}),
    "RegNetX-16GF": ((22, 216, 55.59, 2.1, 128), {
        "v1": ("regnet_x_16gf-2007eb11.pth", 80.058, 94.944), "v2": ("regnet_x_16gf-ba3796d7.pth", 82.716, 96.196)}),
    "RegNetX-32GF": ((23, 320, 69.86, 2.0, 168), {
        "v1": ("regnet_x_32gf-9d47f8d0.pth", 80.622, 95.248), "v2": ("regnet_x_32gf-6eb8fdc6.pth", 83.014, 96.288)}),
}


def torchvision_stage_widths(depth, w0, wa, wm, group_width):
    """torchvision's stage widths: our generator, then _make_divisible (half up)."""
    import numpy as np

    sys.path.insert(0, ROOT)
    from keras_regnet.architecture.config import generate_block_widths

    widths = np.unique(generate_block_widths(depth, w0, wa, wm)).tolist()
    out = []
    for w in widths:
        g = min(group_width, w)
        v = max(g, int(w + g / 2) // g * g)
        if v < 0.9 * w:
            v += g
        out.append(v)
    return out


def tf_keras_hashes():
    import tf_keras.src.applications.regnet as tfk_regnet

    return tfk_regnet.WEIGHTS_HASHES


def tf_keras_suffix(paper_name):
    """'RegNetX-1.6GF' -> 'x016', 'RegNetY-12GF' -> 'y120' (units of 100 MF)."""
    m = re.fullmatch(r"RegNet([XY])-([\d.]+)(MF|GF)", paper_name)
    value = float(m.group(2)) * (1 if m.group(3) == "MF" else 1000) / 100
    return f"{m.group(1).lower()}{int(round(value)):03d}"


def main():
    with open(os.path.join(ROOT, "keras_regnet", "architecture", "regnet_zoo.json")) as f:
        zoo = json.load(f)["models"]
    hashes = tf_keras_hashes()
    out = os.path.join(ROOT, "keras_regnet", "weights", "manifest.json")
    with open(out) as f:  # hashes recorded by weights/record_hashes.py are kept
        recorded = {n: e["pycls"] for n, e in json.load(f)["models"].items() if e["pycls"].get("sha256")}
    manifest = {
        "_about": "Pretrained weight sources per published model; generated by weights/build_manifest.py.",
        "models": {},
    }
    for row in zoo:
        suffix = tf_keras_suffix(row["name"])
        top, notop = hashes[suffix]
        manifest["models"][row["name"]] = {
            "pycls": {
                "url": row["url"],
                "sha256": None,
                "sha256_note": "pycls publishes no checksums",
                "top1_err": row["top1_err_exact"],
                "top5_err": row["top5_err_exact"],
                "license": "MIT (facebookresearch/pycls)",
                "converter": "pycls",
                "preprocessing": "imagenet_mean_std",
            },
            "tf-keras": {
                "url": f"{TF_KERAS_BASE}regnet{suffix}.h5",
                "sha256": top,
                "url_notop": f"{TF_KERAS_BASE}regnet{suffix}_notop.h5",
                "sha256_notop": notop,
                "top1_err": None,
                "top5_err": None,
                "license": "Apache-2.0 (keras-team/tf-keras)",
                "converter": "tf-keras",
                "preprocessing": "rescale_0_1",
            },
        }
    for name, (args, files) in TORCHVISION.items():
        ours = next(r for r in zoo if r["name"] == name)
        assert (ours["depth"], ours["w0"], ours["wa"], ours["wm"], ours["group_w"]) == args, name
        tv_widths = torchvision_stage_widths(*args)
        for version, (file, acc1, acc5) in files.items():
            entry = {
                "url": TORCHVISION_BASE + file,
                "sha256": None,
                "sha256_prefix": file.rsplit("-", 1)[1].split(".")[0],
                "top1_err": round(100 - acc1, 3),
                "top5_err": round(100 - acc5, 3),
                "license": "BSD-3-Clause (pytorch/vision)",
                "converter": "torchvision",
                "preprocessing": "imagenet_mean_std",
            }
            if tv_widths != ours["stage_widths"]:
                entry["incompatible"] = (
                    f"torchvision's stage widths {tv_widths} differ from pycls's {ours['stage_widths']} "
                    "(it rounds to the group width half up, pycls half to even)"
                )
            manifest["models"][name][f"torchvision-{version}"] = entry
    for name, entry in recorded.items():
        manifest["models"][name]["pycls"].update(sha256=entry["sha256"], sha256_note=entry["sha256_note"])
    with open(out + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
