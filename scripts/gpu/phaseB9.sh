# distilled default networks leaning harder on the teachers (weight 0.9; age 0.8), 100 epochs;
# started by hand beside phase B (evaluated, not shipped)
source scripts/gpu/env.sh
for t in emotion age gender; do
  d=$UTK; [ $t = emotion ] && d=$FER; w=0.9; [ $t = age ] && w=0.8
  launch ${t}_kd9 --task $t --data $d --arch default --epochs 100 --batch-size 128 --lr 0.002 --seed 41 \
    --teacher $R/${t}_large/model.keras --teacher $R/${t}_long/model.keras --distill $w
done
