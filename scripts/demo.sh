#!/usr/bin/env bash
# The main job on the embedded default: start a server, make three sample clips with a
# shared cast, diarize them through the CLI and print the result with cross-clip speakers.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-50051}
DATA=$(mktemp -d)
.venv/bin/python examples/sample_clips.py samples >/dev/null
.venv/bin/speakerlink serve --port "$PORT" --data-dir "$DATA/data" >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 120); do
  grep -q "ready on" "$DATA/server.log" && break
  kill -0 $SERVER 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
  sleep 0.5
done
echo "server up on localhost:$PORT; diarizing samples/meeting.wav samples/call.mp3 samples/interview.flac"
.venv/bin/speakerlink --server "localhost:$PORT" diarize samples/meeting.wav samples/call.mp3 samples/interview.flac
