# sourced by the device scripts: Keras from the carried wheels, JAX on the GPU, several processes per GPU
[ -d /tmp/site/keras ] || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false FACESENSE_HOME=/tmp/fshome PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
FER=gpu/fer_train_val_q90.npz
UTK=gpu/utk_train_val_q85.npz
R=runs/gpu
mkdir -p $R
# launch NAME fit-args...: a detached training run (survives the command that started it)
launch() { local name=$1; shift; setsid nohup python3 -m training fit "$@" --out $R/$name --report-split val --workers 3 --precision mixed_bfloat16 > $R/$name.log 2>&1 < /dev/null & }
