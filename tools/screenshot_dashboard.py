#!/usr/bin/env python3
"""Screenshots of the dashboard page of a running `tracker serve --demo`, for the README.

Usage: tools/screenshot_dashboard.py URL TOKEN OUT_PREFIX
  URL         the server, e.g. http://127.0.0.1:8080
  TOKEN       a copil token (serve --demo prints one)
  OUT_PREFIX  e.g. docs/dashboard-full (writes OUT_PREFIX.png and OUT_PREFIX-territoires.png)

Drives Debian's headless Chromium through chromedriver with the W3C WebDriver protocol
over urllib (nothing to install beyond chromium and chromium-driver).
"""
import base64, json, socket, subprocess, sys, tempfile, time, urllib.request


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["value"]


def main():
    url, token, out = sys.argv[1:4]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call("GET", f"{base}/status")
                break
            except OSError:
                time.sleep(0.1)
        profile = tempfile.mkdtemp()
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--lang=fr-FR", "--window-size=1440,1000", f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}}
        session = call("POST", f"{base}/session", caps)["sessionId"]
        s = f"{base}/session/{session}"
        call("POST", f"{s}/url", {"url": f"{url}/dashboard"})
        run = lambda script, args=[]: call("POST", f"{s}/execute/sync", {"script": script, "args": args})
        time.sleep(1)
        run("document.getElementById('token').value = arguments[0];"
            "document.querySelector('#login-form button[type=submit]').click()", [token])
        for _ in range(600):
            if run("return !!document.body.dataset.position && !!document.querySelector('#measures-table tbody tr')"):
                break
            time.sleep(0.1)
        time.sleep(2)

        def shoot(path, height):
            call("POST", f"{s}/window/rect", {"width": 1440, "height": height})
            time.sleep(0.5)
            png = base64.b64decode(call("GET", f"{s}/screenshot"))
            open(path, "wb").write(png)
            print(path)

        run("window.scrollTo(0, 0)")
        shoot(f"{out}.png", 1900)
        run("document.getElementById('region').value = '11';"
            "document.getElementById('region').dispatchEvent(new Event('change'));"
            "document.getElementById('map-title').scrollIntoView()")
        time.sleep(1.5)
        shoot(f"{out}-territoires.png", 1500)
        call("DELETE", s)
    finally:
        driver.kill()


if __name__ == "__main__":
    main()
