"""Dev server soak: 300 rapid saves over about 30 s, a third of them broken, with a
browser attached. The server must stay up, end showing the last save, refuse traversal
and foreign Host requests throughout, and not keep growing in memory."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request

from helpers import DevProcess, copy_sample, save_spec, shown_text

EDITS = 300
INTERVAL = 0.1  # seconds between saves: 300 saves in about 30 s
HEADING = "        text: 今日特价\n"
PROBES = [("/app/../mpforge.yaml", None, 404), ("/app/%2e%2e/%2e%2e/etc/passwd", None, 404),
          ("/app/%252e%252e/mpforge.yaml", None, 404), ("/__mpforge/static/..%2f..%2fcli.py", None, 404),
          ("/", "evil.example", 403), ("/__mpforge/app", "127.0.0.1.nip.io", 403),
          ("/__mpforge/events", "attacker.test:80", 403)]


def probe(port: int, path: str, host: str | None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def edit(base: str, i: int) -> tuple[str, str]:
    """The i-th save: mostly a new heading, some YAML errors, some validation errors."""
    valid = base.replace(HEADING, f"        text: Soak {i}\n")
    if i % 10 == 3:
        return "yaml", valid.replace(f"text: Soak {i}\n", f"text: Soak {i}: unquoted colon\n")
    if i % 10 == 7:
        return "schema", valid.replace("      - type: heading\n", "      - type: headng\n", 1)
    if i % 10 == 9:
        return "truncated", valid[: len(valid) // 3]
    return "valid", valid


def test_soak_300_rapid_edits(tmp_path, page, capsys):
    spec = copy_sample("linli-fresh", tmp_path / "project")
    base = spec.read_text("utf-8")
    assert HEADING in base
    dev = DevProcess(spec, tmp_path / "out")
    try:
        page.goto(dev.url)
        page.locator("body[data-version='1']").wait_for()
        rss = [dev.rss_kib()]
        kinds: dict[str, int] = {}
        refused = 0
        started = time.monotonic()
        due = started
        for i in range(EDITS):
            kind, text = edit(base, i) if i < EDITS - 1 else ("valid", base.replace(HEADING, "        text: Soak final\n"))
            kinds[kind] = kinds.get(kind, 0) + 1
            save_spec(spec, text, atomic=i % 2 == 0)
            if i % 50 == 49:
                rss.append(dev.rss_kib())
                for path, host, expected in PROBES:
                    assert probe(dev.port, path, host) == expected, (path, host)
                    refused += 1
            due += INTERVAL
            time.sleep(max(0.0, due - time.monotonic()))
        duration = time.monotonic() - started
        page.locator("#mpf-page-host .mf-heading-text", has_text="Soak final").wait_for(timeout=30_000)
        page.locator("#mpf-overlay").wait_for(state="hidden")
        settled = time.monotonic() - started - duration
        with urllib.request.urlopen(dev.url + "__mpforge/app", timeout=10) as response:
            status = json.load(response)
        assert status["ok"] is True and status["problems"] == []
        assert "Soak final" in shown_text(page)
        assert dev.alive(), "".join(dev.lines[-20:])
        time.sleep(1.0)
        rss.append(dev.rss_kib())
        builds = dev.builds()
        failed = sum(1 for line in dev.lines if line.startswith("✗ build"))
        with capsys.disabled():
            print(f"\nsoak: {EDITS} saves in {duration:.1f} s ({kinds}), {builds} builds ({failed} failed), "
                  f"last save shown {settled * 1000:.0f} ms after the loop; {refused} hostile requests refused; "
                  f"RSS start {rss[0] / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB, "
                  f"samples {[round(r / 1024, 1) for r in rss]} MiB")
        assert 25 <= duration <= 45
        assert builds >= 20 and failed >= 1 and not any("Traceback" in line for line in dev.lines)
        # Memory does not keep growing: the second half of the run adds little.
        middle = rss[len(rss) // 2]
        assert rss[-1] - middle < 24 * 1024, rss
        assert rss[-1] < rss[0] + 80 * 1024, rss
        assert page.errors == []
    finally:
        assert dev.stop() == 0, "".join(dev.lines[-30:])
