"""Copy finished runs to $OUT without optimizer state, as tars of at most ~15 MiB."""
import os
import pathlib
import shutil
import sys
import tarfile

import keras

out = pathlib.Path(os.environ["OUT"])
src = pathlib.Path("runs/gpu")
tmp = pathlib.Path("/tmp/collect")
names = sys.argv[1:]
for name in names:
    run = src / name
    if not (run / "model.keras").exists() or (tmp / name / "model.keras").exists():
        continue
    (tmp / name).mkdir(parents=True, exist_ok=True)
    keras.saving.load_model(run / "model.keras", compile=False).save(tmp / name / "model.keras")
    for f in ("card.json", "evaluation.json"):
        shutil.copy(run / f, tmp / name / f)
for name in names:
    if (tmp / name).exists():
        with tarfile.open(out / f"{name}.tar", "w") as tar:
            tar.add(tmp / name, arcname=name)
            if (src / f"{name}.log").exists():
                tar.add(src / f"{name}.log", arcname=f"{name}.log")
        print(name, (out / f"{name}.tar").stat().st_size)
