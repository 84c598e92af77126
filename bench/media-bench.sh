#!/usr/bin/env bash
# The image pipeline against sharp (libvips, from npm) and Pillow (draft() + thumbnail()) on
# the same 12 MP JPEG in the same run, then uploads through the whole stack.
#
#   bench/media-bench.sh [runs]      (default 9; the median of each is reported)
#
# - Portico: services/media/pipeline's `peak` example, in process, timing only `process`
#   (decode, orient, four sizes, encode, metadata dropped); JPEG only, then JPEG + WebP.
# - sharp: the same four sizes at quality 80 from one input (rotate() applies EXIF
#   orientation, metadata is dropped by default), timed inside node so start-up is excluded.
# - Pillow: draft() to the smallest DCT scale that keeps 1280 px, exif_transpose(), then
#   thumbnail() and save() per size.
# Peak memory: each tool's maximum resident set (/usr/bin/time -v) for one process of one
# image, against the decoded original (4000 × 3000 × 3 bytes = 36 MB).
# Then: N uploads of the same photo through `portico dev` (multipart → gateway → media
# service → eight variants on disk), one at a time, against the in-process figure.
# Installs Pillow (pip) and sharp (npm) into a temporary folder when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-9}
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
TARGET=${CARGO_TARGET_DIR:-target}

python3 -c 'import PIL' 2>/dev/null || python3 -m pip install -q pillow
(cd "$WORK" && npm init -y >/dev/null && npm install -s --no-audit --no-fund sharp@0.34 >/dev/null)
cargo build --release -q -p portico-media-pipeline --example peak
cargo build --release -q -p portico

PEAK="$TARGET/release/examples/peak"
"$PEAK" --write-sample "$WORK/photo.jpg" >/dev/null

median() { python3 -c 'import sys,statistics; print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.1f}")'; }
max_rss_mb() { awk '/Maximum resident set size/ {printf "%.1f", $6/1024}' "$1"; }

cat > "$WORK/sharp.js" <<'JS'
const sharp = require("sharp");
const fs = require("fs");
const input = fs.readFileSync(process.argv[2]);
const runs = Number(process.argv[3]);
const sizes = [1280, 640, 320, 150];
(async () => {
  for (let i = 0; i < runs + 1; i++) {
    const t = process.hrtime.bigint();
    const base = sharp(input).rotate();
    await Promise.all(sizes.map((s) =>
      base.clone().resize(s, s, { fit: "inside", withoutEnlargement: true }).jpeg({ quality: 80 }).toBuffer()));
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (i > 0) console.log(ms.toFixed(2)); // the first run warms libvips up
  }
})();
JS
cat > "$WORK/pillow.py" <<'PY'
import io, sys, time
from PIL import Image, ImageOps
data = open(sys.argv[1], "rb").read()
runs = int(sys.argv[2])
for i in range(runs + 1):
    t = time.perf_counter()
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (1280, 1280))
    im = ImageOps.exif_transpose(im)
    for s in (1280, 640, 320, 150):
        v = im.copy()
        v.thumbnail((s, s), Image.LANCZOS)
        v.save(io.BytesIO(), "JPEG", quality=80)
    if i > 0:
        print(f"{(time.perf_counter() - t) * 1000:.2f}")
PY

echo "12 MP JPEG ($(stat -c %s "$WORK/photo.jpg") bytes), $RUNS runs each, alternating tools"
: > "$WORK/portico4" ; : > "$WORK/portico8" ; : > "$WORK/sharp" ; : > "$WORK/pillow"
for _ in 1 2 3; do
  "$PEAK" "$WORK/photo.jpg" --jpeg-only --repeat $((RUNS / 3 + 1)) | awk '/^run/ && $2 != "0:" {print $3}' >> "$WORK/portico4"
  node "$WORK/sharp.js" "$WORK/photo.jpg" $((RUNS / 3)) >> "$WORK/sharp"
  python3 "$WORK/pillow.py" "$WORK/photo.jpg" $((RUNS / 3)) >> "$WORK/pillow"
  "$PEAK" "$WORK/photo.jpg" --repeat $((RUNS / 3 + 1)) | awk '/^run/ && $2 != "0:" {print $3}' >> "$WORK/portico8"
done
P4=$(median < "$WORK/portico4"); P8=$(median < "$WORK/portico8")
SH=$(median < "$WORK/sharp"); PI=$(median < "$WORK/pillow")

/usr/bin/time -v "$PEAK" "$WORK/photo.jpg" --jpeg-only > /dev/null 2> "$WORK/rss4"
/usr/bin/time -v "$PEAK" "$WORK/photo.jpg" > /dev/null 2> "$WORK/rss8"
/usr/bin/time -v node "$WORK/sharp.js" "$WORK/photo.jpg" 1 > /dev/null 2> "$WORK/rss_sharp"
/usr/bin/time -v python3 "$WORK/pillow.py" "$WORK/photo.jpg" 1 > /dev/null 2> "$WORK/rss_pillow"

python3 - "$P4" "$P8" "$SH" "$PI" "$(max_rss_mb "$WORK/rss4")" "$(max_rss_mb "$WORK/rss8")" \
  "$(max_rss_mb "$WORK/rss_sharp")" "$(max_rss_mb "$WORK/rss_pillow")" <<'PYR'
import sys
p4, p8, sh, pi, r4, r8, rs, rp = map(float, sys.argv[1:])
print(f"{'':34} {'median ms':>10} {'vs sharp':>9} {'peak RSS MB':>12}")
print(f"{'portico, 4 JPEG':34} {p4:>10.1f} {p4/sh:>9.2f} {r4:>12.1f}")
print(f"{'portico, 4 JPEG + 4 WebP':34} {p8:>10.1f} {p8/sh:>9.2f} {r8:>12.1f}")
print(f"{'sharp (libvips), 4 JPEG':34} {sh:>10.1f} {1:>9.2f} {rs:>12.1f}")
print(f"{'Pillow draft+thumbnail, 4 JPEG':34} {pi:>10.1f} {pi/sh:>9.2f} {rp:>12.1f}")
print(f"targets: 4 JPEG <= 1.0 x sharp ({'met' if p4 <= sh else 'missed'}); 8 variants < 2 x sharp "
      f"({'met' if p8 < 2*sh else 'missed'}); peak < 2 x decoded original 36 MB = 72 MB "
      f"({'met' if r8 < 72 else 'missed'}; whole process, binary and runtime included)")
PYR

# Uploads through the stack.
GW_PORT=18103
PORTICO_DATA_DIR="$WORK/data" PORTICO_HTTP_ADDR="127.0.0.1:$GW_PORT" PORTICO_BETA_GRPC_ADDR=127.0.0.1:0 \
PORTICO_WORKFLOW_GRPC_ADDR=127.0.0.1:0 PORTICO_MEDIA_GRPC_ADDR=127.0.0.1:0 PORTICO_RATE_FREE_PER_MIN=1000000 PORTICO_LOG=warn \
  "$TARGET/release/portico" dev > "$WORK/portico.log" 2>&1 &
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null && break; sleep 0.1; done
TOKEN=$(curl -s "127.0.0.1:$GW_PORT/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')
: > "$WORK/uploads"
for i in $(seq 1 "$RUNS"); do
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "127.0.0.1:$GW_PORT/v1/mobile/upload-optimized" \
    -H "authorization: Bearer $TOKEN" -F "file=@$WORK/photo.jpg" >> "$WORK/uploads"
done
python3 - "$WORK/uploads" "$P8" "$(stat -c %s "$WORK/photo.jpg")" <<'PYU'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ok = [float(t) * 1000 for code, t in rows if code == "201"]
p8, size = float(sys.argv[2]), int(sys.argv[3])
m = statistics.median(ok)
print(f"uploads through the gateway: {len(ok)}/{len(rows)} answered 201; median {m:.1f} ms each "
      f"({1000/m:.1f} uploads/s, {size*1000/m/1e6:.1f} MB/s one at a time); "
      f"vs the pipeline alone in process: {m/p8:.2f}x")
PYU
