# wait.sh SECONDS RUN...: wait until every RUN saved its model (or SECONDS pass), then bring the finished ones back
source scripts/gpu/env.sh
limit=$1; shift; start=$SECONDS
while [ $((SECONDS - start)) -lt $limit ]; do
  done_all=1; for n in "$@"; do [ -f $R/$n/model.keras ] || done_all=0; done
  [ $done_all = 1 ] && break; sleep 10
done
bash scripts/gpu/status.sh
python3 scripts/gpu/collect.py "$@" 2>&1 | grep -v -E "^(E0000|W0000|I0000)"
cp $R/*.log $OUT/ 2>/dev/null; cd $OUT && tar cf logs.tar *.log 2>/dev/null && rm -f *.log
