# Sourced by .ci/run after the tests: Docker cannot run here, so repeat the Dockerfile's install steps on exactly
# the files it copies (a plain `pip install .` from the pinned constraints), in a fresh virtualenv, and check the
# installed `rankbot` opens PostgreSQL, starts, and answers the HEALTHCHECK.
IMAGE_DIR=$(mktemp -d /tmp/rankbot-image.XXXXXX)
cp pyproject.toml README.md constraints.txt "$IMAGE_DIR"/
cp -r bot digests storage "$IMAGE_DIR"/
python3 -m venv "$IMAGE_DIR/venv"
(cd "$IMAGE_DIR" && venv/bin/pip install --quiet --constraint constraints.txt .)
mkdir -p "$IMAGE_DIR/data" "$IMAGE_DIR/out"
IMAGE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(
  cd "$IMAGE_DIR/out"  # the image's WORKDIR is its /out volume
  export RANKBOT_STORAGE_DATABASE_URL="sqlite:///$IMAGE_DIR/data/rankbot.db" RANKBOT_OUTPUT_DIRECTORY="$IMAGE_DIR/out"
  export RANKBOT_SERVICE_HOST=127.0.0.1 RANKBOT_SERVICE_PORT=$IMAGE_PORT RANKBOT_OPENROUTER_BASE_URL=http://127.0.0.1:9
  "$IMAGE_DIR/venv/bin/rankbot" check-config
  # A file output without a directory writes to [output].directory, the /out volume in the image.
  printf '[[outputs]]\nname = "archive"\nkind = "file"\n' > "$IMAGE_DIR/config.toml"
  said=$("$IMAGE_DIR/venv/bin/rankbot" check-config --config "$IMAGE_DIR/config.toml")
  grep -qF "archive (file → files in $IMAGE_DIR/out/)" <<<"$said" || { echo "image check: $said"; exit 1; }
  # A plain install reaches PostgreSQL: the driver is a dependency, not an extra.
  said=$(RANKBOT_STORAGE_DATABASE_URL="$RANKBOT_TEST_POSTGRES_URL" "$IMAGE_DIR/venv/bin/rankbot" check-config)
  grep -q "database: postgresql+psycopg://.*(opened;" <<<"$said" || { echo "image check: $said"; exit 1; }
  echo "image check: a plain install opens PostgreSQL; file outputs default to the out volume"
  "$IMAGE_DIR/venv/bin/rankbot" run &
  RUN_PID=$!
  for _ in $(seq 1 100); do
    if "$IMAGE_DIR/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$IMAGE_PORT/healthz', timeout=4)" 2>/dev/null; then
      echo "image check: installed rankbot answers /healthz"; break
    fi
    sleep 0.2
  done
  "$IMAGE_DIR/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$IMAGE_PORT/healthz', timeout=4)"
  # The templates and the stylesheet are in the installed package: the web pages work from a plain install.
  "$IMAGE_DIR/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$IMAGE_PORT/static/site.css', timeout=4)"
  "$IMAGE_DIR/venv/bin/python" -c "
import urllib.error, urllib.request
try:
    urllib.request.urlopen('http://127.0.0.1:$IMAGE_PORT/', timeout=10)
except urllib.error.HTTPError as error:
    assert error.code == 404 and b'No complete day is stored yet' in error.read(), error
"
  echo "image check: installed rankbot serves its pages"
  kill -TERM "$RUN_PID"
  wait "$RUN_PID"
)
rm -rf "$IMAGE_DIR"
