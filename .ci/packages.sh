# Sourced by .ci/run: the Debian packages the tests need, installed once in one apt-get call if missing:
# PostgreSQL (a real server for the storage tests) and Chromium (the browser test drives /usr/bin/chromium with
# Playwright; Playwright's own browser download cannot work here). Needs root (CI runs as root).
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
