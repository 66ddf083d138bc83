# warm restarts of the distilled age/gender networks, taught by all four networks of phase A/B
source scripts/gpu/env.sh
for t in age gender; do
  T=""; for n in large long kd kd_warm; do T="$T --teacher $R/${t}_$n/model.keras"; done
  w=0.7; [ $t = age ] && w=0.5
  launch ${t}_kd2a --task $t --data $UTK --arch default --epochs 50 --batch-size 128 --lr 0.001 --seed 51 --init $R/${t}_kd/model.keras $T --distill $w
  launch ${t}_kd2b --task $t --data $UTK --arch default --epochs 50 --batch-size 128 --lr 0.001 --seed 52 --init $R/${t}_long/model.keras $T --distill $w
done
echo launched
