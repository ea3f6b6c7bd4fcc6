# Installs what the browser tests (tests/tests/browser.rs) need: Debian's chromium, which they
# run headless, with a font that has the status page's symbols (✓ ✕), and playwright-core from
# npm, pinned by tests/browser/package-lock.json, which drives it. Playwright's own browser
# builds are never downloaded. Node 20 and npm are expected on the machine.

install_browser_peers() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian's packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # npm ci starts node_modules afresh: only when the lockfile changed since the last one, which
  # leaves the lockfile's checksum beside the modules.
  local dir=tests/browser sum
  sum=$(sha256sum "$dir/package-lock.json" | cut -d ' ' -f 1)
  if [ "$(cat "$dir/node_modules/.package-lock.sha256" 2>/dev/null)" != "$sum" ]; then
    echo "installing $dir's npm packages (npm ci)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    echo "$sum" >"$dir/node_modules/.package-lock.sha256"
  fi
  # Debian's chromium wrapper complains on stderr as it starts; the version is on stdout.
  echo "$(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('./$dir/node_modules/playwright-core/package.json').version")"
}
