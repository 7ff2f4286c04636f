#!/usr/bin/env bash
# The CUDA leg of `edgevoice parity`, prepared for a machine with an NVIDIA GPU: a venv with edgevoice and
# onnxruntime-gpu in place of onnxruntime, a probe that a session really runs on the CUDA provider, then every
# case saved by a CPU run replayed with --against on onnxruntime-cuda (and on this machine's CPU, to tell the
# device's share from the machine's), one report folder per case.
#
# 1. On a CPU machine, save the cases (the reference runs) and bring them along with the bundles:
#      edgevoice parity --bundle B --backend openvino --reference ref.wav --reference-text "..." \
#          --seeds 8 --save fp32.npz                        # FP32 CPU vs CUDA FP32
#      edgevoice parity --bundle B-int8 --backend openvino --reference ref.wav --reference-text "..." \
#          --seeds 8 --save int8.npz                        # INT8 CPU vs CUDA FP32 (judged by the INT8 gates)
# 2. On the GPU machine, from the repository root:
#      benchmarks/cuda_parity.sh OUT BUNDLE CASE.npz [CASE.npz ...]
#    BUNDLE is the FP32 bundle (onnxruntime runs the FP32 ONNX of any variant; CUDA never sees INT8 IR).
#
# Environment: VENV (default /tmp/edgevoice-cuda), ORT_GPU (pip requirement, default onnxruntime-gpu; match its
# CUDA major version to the driver's), WHEELS (a folder of wheels for a machine without network: pip then
# installs from it alone). The venv sees the system's packages, so CUDA libraries that came with PyTorch are used.
# Exit status: 0 every replay passed its gates, 1 a gate failed, 2 CUDA could not be used, 3 bad arguments.
# fp16 is not offered: bundles carry FP32 ONNX, and onnxruntime-cuda runs them as they are.
set -uo pipefail

if [ "$#" -lt 3 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 3
fi
mkdir -p "$1" || exit 3
# absolute paths: the script works from the repository root
out=$(realpath "$1") bundle=$(realpath "$2")
shift 2
cases=()
for case in "$@"; do cases+=("$(realpath "$case")"); done
venv=${VENV:-/tmp/edgevoice-cuda}
log="$out/cuda_parity.log"
exec > >(tee -a "$log") 2>&1
cd "$(dirname "$0")/.." || exit 3

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "venv $venv with onnxruntime-gpu"
python3 -m venv --system-site-packages "$venv" || exit 2
pip=("$venv/bin/python" -m pip install -q)
# offline, edgevoice is built with the system's setuptools and wheel instead of fetching them
[ -n "${WHEELS:-}" ] && pip+=(--no-index --find-links "$WHEELS" --no-build-isolation)
"${pip[@]}" -e . || exit 2
# onnxruntime and onnxruntime-gpu install the same module: only the GPU build may remain
"$venv/bin/python" -m pip uninstall -y -q onnxruntime
"${pip[@]}" "${ORT_GPU:-onnxruntime-gpu}" || exit 2
# CUDA and cuDNN from pip wheels (nvidia-*) are not on the loader's path by themselves
nvidia_libs=$("$venv/bin/python" - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "nvidia", "*", "lib"))})))
EOF
)
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "probe: a session on the CUDA provider"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$venv/bin/python" - "$bundle" <<'EOF' || { echo "CUDA could not be used (see above)"; exit 2; }
import sys
import onnxruntime as ort
from edgevoice.backends import make_backend
from edgevoice.bundle import Bundle

print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
bundle = Bundle.load(sys.argv[1])
graph = next(name for name, g in bundle.manifest.graphs.items() if "onnx" in g.files)
make_backend("onnxruntime-cuda").session(bundle, graph)  # refuses to fall back to the CPU
print(f"{graph}: the CUDA provider runs it")
EOF

status=0
for case in "${cases[@]}"; do
    name=$(basename "$case" .npz)
    step "replay $case on onnxruntime-cuda and onnxruntime (this CPU)"
    "$venv/bin/edgevoice" parity --bundle "$bundle" --backend onnxruntime-cuda --backend onnxruntime \
        --against "$case" --report "$out/$name"
    code=$?
    [ "$code" -ne 0 ] && status=1
    echo "$name: exit $code"
done
step "done: reports under $out (status $status)"
exit "$status"
