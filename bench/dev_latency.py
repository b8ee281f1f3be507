"""Save -> DOM updated latency of `mpforge dev`, in headless Chromium.

For a sample and for a synthetic 200-page spec: start `mpforge dev`, open the preview
on the home page, then 30 times change a heading on that page with an editor-style
atomic save and time from just before the save until a MutationObserver in the page
sees the new text. Reports p50 / p95 / max, and the server's own build times (from
its log) to show where the time goes. Goal: p50 < 200 ms, p95 < 400 ms.

    python bench/dev_latency.py [--edits 30] [--pages 200] [--sample harbour-coffee]

Needs Playwright for Python and Debian's chromium (as the browser tests do).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from synthetic import REPO, write_spec

sys.path.insert(0, str(REPO / "tests"))
from e2e_support import DevProcess, chromium_path, copy_sample, save_spec  # noqa: E402

WATCH = """marker => {
  const root = document.querySelector('#mpf-page-host').shadowRoot;
  window.__seen = new Promise(resolve => {
    const check = () => {
      if (root.textContent.includes(marker)) {
        observer.disconnect();
        resolve(performance.timeOrigin + performance.now());
        return true;
      }
      return false;
    };
    const observer = new MutationObserver(check);
    observer.observe(root, {childList: true, subtree: true, characterData: true});
    check();
  });
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure(browser, spec: Path, out: Path, original: str, edits: int) -> tuple[list[float], list[float]]:
    dev = DevProcess(spec, out)
    try:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(dev.url)
        page.locator("body[data-version='1']").wait_for(timeout=120_000)
        base = spec.read_text("utf-8")
        latencies = []
        for i in range(edits):
            marker = f"Bench edit {i}"
            page.evaluate(WATCH, marker)
            start = time.time() * 1000
            save_spec(spec, base.replace(original, f"text: {marker}\n", 1))
            seen = page.evaluate("window.__seen")
            latencies.append(seen - start)
            time.sleep(0.25)
        context.close()
        builds = [float(m.group(1)) for line in dev.lines[1:]
                  if (m := re.match(r"✓ build \d+ in (\d+) ms", line))]
        return latencies, builds
    finally:
        dev.stop()


def report(name: str, latencies: list[float], builds: list[float]) -> None:
    print(f"| {name} | {len(latencies)} | {statistics.median(latencies):.0f} | {percentile(latencies, 0.95):.0f} | "
          f"{max(latencies):.0f} | {statistics.median(builds):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--sample", default="harbour-coffee")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        sys.exit("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        tmp_path = Path(tmp)
        sample_spec = copy_sample(args.sample, tmp_path / "sample")
        heading = {"harbour-coffee": "text: 本季推荐\n", "linli-fresh": "text: 今日特价\n"}[args.sample]
        sample = measure(browser, sample_spec, tmp_path / "sample-out", heading, args.edits)
        big_spec = write_spec(args.pages, tmp_path / "big")
        big = measure(browser, big_spec, tmp_path / "big-out", "text: Page 0\n", args.edits)
        browser.close()
    print("save -> DOM updated, ms (p50 goal < 200, p95 goal < 400)\n")
    print("| spec | edits | p50 | p95 | max | server build p50 |")
    print("|---|---:|---:|---:|---:|---:|")
    report(args.sample, *sample)
    report(f"synthetic {args.pages} pages", *big)


if __name__ == "__main__":
    main()
