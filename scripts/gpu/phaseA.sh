# teachers (large) and long-trained default networks for all three tasks, then per task a watcher
# that starts the distilled students once both of its teachers are saved
source scripts/gpu/env.sh
E="--epochs ${EA:-100} --batch-size 128 --lr 0.002"
S="--epochs ${SA:-150} --batch-size 128 --lr 0.002"
launch emotion_large --task emotion --data $FER --arch large $E --seed 20
launch emotion_long  --task emotion --data $FER --arch default $S --seed 21
launch age_large     --task age --data $UTK --arch large $E --seed 22
launch age_long      --task age --data $UTK --arch default $S --seed 23
launch gender_large  --task gender --data $UTK --arch large $E --seed 24
launch gender_long   --task gender --data $UTK --arch default $S --seed 25
for t in emotion age gender; do setsid nohup bash scripts/gpu/phaseB.sh $t > $R/watch_$t.log 2>&1 < /dev/null & done
echo launched
