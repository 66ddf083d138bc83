# one line per run: its latest epoch line
cd runs/gpu 2>/dev/null || exit 0
date; for f in *.log; do echo "$f: $(grep -E '^Epoch [0-9]+/' $f | tail -1) $(grep -E ' - [0-9]+s - ' $f | tail -1 | cut -c1-150) $(grep -E 'Error|error:' $f | tail -1)"; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
