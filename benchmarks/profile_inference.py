"""Where RegNetY-800MF inference time goes on CPU, per TensorFlow op type.

    python benchmarks/profile_inference.py [--model RegNetY-800MF] [--tf-keras]

Freezes the forward pass (batch 32, 224x224) to a graph, runs it once with
full tracing in a TF1 session and sums each op type's wall time.  With
Keras's stock grouped convolution, the ``StatefulPartitionedCall`` rows are
the per-op XLA functions Keras wraps grouped convs in; ``--tf-keras``
profiles ``tf_keras.applications.RegNetY008`` (``PartitionedCall``, same
cause).  Note: freezing turns variables into constants, so grappler may
fold BatchNorm into convs here; absolute numbers are indicative, the
breakdown is the point.
"""

import argparse
import collections
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework.convert_to_constants import (  # noqa: E402
    convert_variables_to_constants_v2,
)


def profile(model, batch=32):
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((batch, 224, 224, 3), tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
    inp, out = frozen.inputs[0].name, frozen.outputs[0].name
    x = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
    meta = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as sess:
        for _ in range(2):
            sess.run(out, {inp: x})
        t = time.perf_counter()
        for _ in range(3):
            sess.run(out, {inp: x})
        ips = 3 * batch / (time.perf_counter() - t)
        trace = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        sess.run(out, {inp: x}, options=trace, run_metadata=meta)
    per_op = collections.defaultdict(float)
    count = collections.Counter()
    for dev in meta.step_stats.dev_stats:
        for ns in dev.node_stats:
            label = ns.timeline_label
            op = label.split(" = ")[1].split("(")[0] if " = " in label else ns.node_name
            per_op[op] += ns.all_end_rel_micros / 1000
            count[op] += 1
    return ips, per_op, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="RegNetY-800MF")
    parser.add_argument("--tf-keras", action="store_true", help="profile tf_keras's RegNetY008")
    parser.add_argument("--stock-grouped-conv", action="store_true",
                        help="use Keras's stock grouped conv (per-op XLA) instead of GroupedConv2D")
    args = parser.parse_args()
    if args.tf_keras:
        import tf_keras

        model = tf_keras.applications.RegNetY008(weights=None)
    else:
        import keras_regnet
        from keras_regnet.architecture.layers import set_grouped_conv_kernel

        # Read when profile() traces the forward pass.
        set_grouped_conv_kernel("keras" if args.stock_grouped_conv else "auto")
        model = keras_regnet.get_model(args.model)
    ips, per_op, count = profile(model)
    total = sum(per_op.values())
    print(f"frozen-graph session: {ips:.1f} images/s")
    print("| op | count | ms | share |")
    print("|---|---:|---:|---:|")
    for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:12]:
        print(f"| {op} | {count[op]} | {ms:.1f} | {100 * ms / total:.1f}% |")


if __name__ == "__main__":
    main()
