"""Check that a web browser plays an exported review video: headless Chromium loads the MP4 in a
<video> element, plays it to the `ended` event, and sends back what it saw (video size,
duration) plus a PNG of the first frame it drew.

    python -m scripts.check_browser_playback out/overlay.mp4 [--screenshot frame.png]

Prints one JSON line; exits 0 when the video played to the end, 1 when it did not, 2 when no
Chromium is installed (Debian: apt-get install chromium). Everything runs on 127.0.0.1: a tiny
HTTP server serves the page and the video and receives the browser's report.
"""
import argparse
import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from util.errors import UserError, run_cli

PAGE = """<!doctype html><html><body style="margin:0">
<video id="v" src="/video.mp4" muted autoplay playsinline></video>
<canvas id="c"></canvas>
<script>
const v = document.getElementById('v'), c = document.getElementById('c');
let shot = null;
function report(state) {
  fetch('/report', {method: 'POST', body: JSON.stringify({state: state, width: v.videoWidth,
        height: v.videoHeight, duration: v.duration, error: v.error && v.error.code, png: shot})});
}
v.addEventListener('loadeddata', () => {
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0);
  shot = c.toDataURL('image/png');
});
v.addEventListener('ended', () => report('ended'));
v.addEventListener('error', () => report('error'));
v.play().catch(e => report('play failed: ' + e));
</script></body></html>"""


def find_chromium():
    for name in ('chromium', 'chromium-browser', 'google-chrome', 'chrome'):
        p = shutil.which(name)
        if p:
            return p
    return None


def check(video, timeout=60.0, chromium=None):
    """Play `video` in headless Chromium. Returns the browser's report (dict with 'state',
    'width', 'height', 'duration', 'png' bytes or None)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise UserError('no Chromium found (Debian: apt-get install chromium)')
    with open(video, 'rb') as f:
        data = f.read()
    got = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path == '/video.mp4':
                body, ctype = data, 'video/mp4'
            elif self.path == '/':
                body, ctype = PAGE.encode(), 'text/html'
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get('Content-Length', 0))
            got.update(json.loads(self.rfile.read(n) or b'{}'))
            self.send_response(204)
            self.end_headers()
            done.set()

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix='ivos_chromium_')
    cmd = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--autoplay-policy=no-user-gesture-required', f'--user-data-dir={profile}',
           f'http://127.0.0.1:{server.server_address[1]}/']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while not done.wait(0.2):
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                break
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    if not got:
        return {'state': 'no report (timed out)', 'png': None}
    png = got.get('png')
    if png and png.startswith('data:image/png;base64,'):
        got['png'] = base64.b64decode(png.split(',', 1)[1])
    else:
        got['png'] = None
    return got


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('video', help='MP4 file to play')
    ap.add_argument('--screenshot', help='write the first frame the browser drew to this PNG')
    ap.add_argument('--timeout', type=float, default=60.0, help='seconds to wait (default 60)')
    a = ap.parse_args(argv)
    if not os.path.isfile(a.video):
        raise UserError(f'video not found: {a.video}')
    if find_chromium() is None:
        print('error: no Chromium found (Debian: apt-get install chromium)', file=sys.stderr)
        return 2
    r = check(a.video, a.timeout)
    if a.screenshot and r.get('png'):
        with open(a.screenshot, 'wb') as f:
            f.write(r['png'])
    print(json.dumps({k: v for k, v in r.items() if k != 'png'} | {'frame_png': bool(r.get('png'))}))
    return 0 if r.get('state') == 'ended' else 1


if __name__ == '__main__':
    run_cli(main)
