"""Where the frozen part of a backbone ends: the tensors that cross into its trainable part.

Phase 2 unfreezes the top of the backbone, but everything that no trainable layer feeds is still
a fixed function of the image (its BatchNormalization layers are frozen and run in inference
mode). The cut between the two parts is a set of tensors, not one layer: in MobileNetV2 or a
ResNet a residual connection crosses the boundary beside the main path (`block_12_add` takes
`block_11_add` and `block_12_project_BN`). `frozen_boundary` finds that set from the graph, for
any keras.applications family, and `split_at` builds the two halves from the backbone's own
layers (shared, not copied), so training the top half trains the model that is exported.

Keras has no public API for a layer's inbound nodes; `_inbound_nodes` and `_keras_history` are
the attributes Keras' own functional cloning uses (keras/src/models/functional.py), read here
only, never written.
"""

import keras


def frozen_boundary(backbone: keras.Model) -> list:
    """The KerasTensors computed without any trainable layer and consumed by a layer that
    depends on one, in graph order. Empty when nothing in the backbone trains."""
    varying = set()  # ids of tensors that depend on a trainable weight
    boundary, seen = [], set()
    for operation in backbone.operations:
        if isinstance(operation, keras.layers.InputLayer):
            continue
        node = operation._inbound_nodes[0]
        inputs = node.input_tensors
        if getattr(operation, "trainable_weights", None) or any(id(t) in varying for t in inputs):
            varying.update(id(t) for t in node.output_tensors)
            for tensor in inputs:
                if id(tensor) not in varying and id(tensor) not in seen:
                    seen.add(id(tensor))
                    boundary.append(tensor)
    return boundary


def boundary_names(boundary: list) -> list[str]:
    """The layers whose outputs form the boundary (for logs, metrics and cache keys)."""
    return [tensor._keras_history.operation.name for tensor in boundary]


def split_at(backbone: keras.Model, boundary: list) -> tuple[keras.Model, keras.Model]:
    """(bottom: backbone input -> boundary tensors, top: boundary tensors -> backbone output).

    Both are functional models over the backbone's own layers; a boundary of one tensor is a
    single output and input, not a list of one.
    """
    tensors = boundary[0] if len(boundary) == 1 else list(boundary)
    bottom = keras.Model(backbone.input, tensors, name=f"{backbone.name}_frozen")
    top = keras.Model(tensors, backbone.output, name=f"{backbone.name}_trainable")
    return bottom, top
