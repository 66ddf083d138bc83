# distilled default networks for task $1 once its phase-A teachers exist
source scripts/gpu/env.sh
t=$1
while [ ! -f $R/${t}_large/model.keras ] || [ ! -f $R/${t}_long/model.keras ]; do sleep 5; done
w=0.7; [ $t = age ] && w=0.5
T="--teacher $R/${t}_large/model.keras --teacher $R/${t}_long/model.keras --distill $w"
launch ${t}_kd      --task $t --data $([ $t = emotion ] && echo $FER || echo $UTK) --arch default --epochs ${SB:-150} --batch-size 128 --lr 0.002 --seed 31 $T
launch ${t}_kd_warm --task $t --data $([ $t = emotion ] && echo $FER || echo $UTK) --arch default --epochs ${WB:-60} --batch-size 128 --lr 0.001 --seed 32 --init $R/${t}_long/model.keras $T
echo "phase B for $t launched at $(date)"
