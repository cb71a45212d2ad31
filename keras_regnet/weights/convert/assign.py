"""Checked assignment of converted arrays to a model's variables: all shapes first, then all values.

Every converter pairs each variable with its source array through
:func:`checked_assignments` and only then calls :func:`assign`, so a
checkpoint that does not fit leaves the model untouched.
"""

from __future__ import annotations


def checked_assignments(model, arrays_for, what):
    """Pair every model variable with its source array, checking all shapes first.

    ``arrays_for(layer)`` returns ``[(source_key, array), ...]`` in the order of
    ``layer.weights``.  Nothing is assigned here, so a mismatch anywhere leaves
    the model untouched.  Returns ``(assignments, used source keys)``.
    """
    assignments, used = [], set()
    for layer in model.layers:
        if not layer.weights:
            continue
        pairs = arrays_for(layer)
        if len(pairs) != len(layer.weights):
            raise ValueError(
                f"{what}s {[k for k, _ in pairs]} give {len(pairs)} arrays; layer {layer.name!r} "
                f"has {len(layer.weights)} variables."
            )
        for variable, (key, value) in zip(layer.weights, pairs):
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"{what} {key!r} has shape {value.shape} but layer {layer.name!r} expects "
                    f"{tuple(variable.shape)} (in Keras layout)."
                )
            assignments.append((variable, value))
            used.add(key)
    return assignments, used


def assign(assignments):
    """Assign the values :func:`checked_assignments` paired with their variables."""
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))


