"""binaura on-device runtime. numpy + onnxruntime + tokenizers; never torch."""
