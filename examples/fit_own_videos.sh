#!/usr/bin/env bash
# Adapt the shipped model to your own videos (no labels needed: the method is self-supervised), then mask them.
#   bash examples/fit_own_videos.sh /path/to/videos
# On a CPU this runs ~15 minutes of fine-tuning with the shipped narrow net; on a GPU raise --steps (and --width
# for a model from scratch) and pass --device cuda.
set -euo pipefail
videos=${1:?usage: fit_own_videos.sh VIDEOS_FOLDER}
wormclean fit "$videos" -o my_model.pt --init default --patch-size 128 --batch-size 16 --learning-rate 3e-4 \
    --steps 2000 --time-limit 15 --validate-every 100
first=$(find "$videos" -type f \( -name '*.mp4' -o -name '*.avi' -o -name '*.mkv' -o -name '*.mjpg' \) | sort | head -n 1)
wormclean preview "$first" -o my_model_preview.png --model my_model.pt
wormclean mask "$videos" -o masks/ --model my_model.pt
