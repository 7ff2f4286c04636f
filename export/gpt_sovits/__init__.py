"""GPT-SoVITS on the torch side, room by room: checkpoints (`checkpoints.py`) → our PyTorch reference (`models/`)
→ graphs (`graphs.py`) → ONNX/IR bundle (`exporter.py`); `random_model.py` writes random weights in upstream's
formats, `torch_backend.py` runs the reference behind the runtime's backend interface (parity)."""
