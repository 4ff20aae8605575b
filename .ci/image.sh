# Sourced by .ci/run after the tests: Docker cannot run here, so repeat the Dockerfile's install steps on exactly
# the files it copies, in a fresh virtualenv, and check the installed `rankbot` starts and answers the HEALTHCHECK.
IMAGE_DIR=$(mktemp -d /tmp/rankbot-image.XXXXXX)
cp pyproject.toml README.md "$IMAGE_DIR"/
cp -r bot digests storage "$IMAGE_DIR"/
python3 -m venv "$IMAGE_DIR/venv"
(cd "$IMAGE_DIR" && venv/bin/pip install --quiet '.[postgres]')
mkdir -p "$IMAGE_DIR/data" "$IMAGE_DIR/out" "$IMAGE_DIR/home"
IMAGE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(
  cd "$IMAGE_DIR/home"
  export RANKBOT_STORAGE_DATABASE_URL="sqlite:///$IMAGE_DIR/data/rankbot.db" RANKBOT_OUTPUT_DIRECTORY="$IMAGE_DIR/out"
  export RANKBOT_SERVICE_HOST=127.0.0.1 RANKBOT_SERVICE_PORT=$IMAGE_PORT RANKBOT_OPENROUTER_BASE_URL=http://127.0.0.1:9
  "$IMAGE_DIR/venv/bin/rankbot" check-config
  "$IMAGE_DIR/venv/bin/rankbot" run &
  RUN_PID=$!
  for _ in $(seq 1 100); do
    if "$IMAGE_DIR/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$IMAGE_PORT/healthz', timeout=4)" 2>/dev/null; then
      echo "image check: installed rankbot answers /healthz"; break
    fi
    sleep 0.2
  done
  "$IMAGE_DIR/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$IMAGE_PORT/healthz', timeout=4)"
  kill -TERM "$RUN_PID"
  wait "$RUN_PID"
)
rm -rf "$IMAGE_DIR"
