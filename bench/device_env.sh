# Sourced by the device-check scripts (gpu_checks.sh, robust_checks.sh), from the repo root: the packages the lent
# machine lacks travel as wheels in .whl/ (see the device tool's README) and go to /tmp/site; shiftlab runs from src/.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
