#!/usr/bin/env python3
"""capture.py — record what the real peers send, case by case, as fixtures.

Reads the state file `scripts/peers start` wrote, scripts the mock upstream through its
control API (one marker per peer and case), sends one request through each peer with curl,
and writes `peers/fixtures/<peer>-<version>/<case>.http` (status line, headers, body as curl
received them) and `<case>.meta.json` (the request, the script, curl's exit code and error,
and what the upstream received: attempts, outcomes, forwarded headers).

    python3 peers/capture.py [--state .peers/state.env] [--only litellm,portkey] [--case NAME]
"""
import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
CURL_MAX_TIME_S = 60  # bound on every captured exchange (LiteLLM's default retries back off)


def read_state(path):
    state = {}
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        state[k] = shlex.split(v)[0] if v else ""
    return state


def control(mock, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mock + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def chat(model, marker, stream=False, text="hello"):
    body = {"model": model, "messages": [{"role": "user", "content": f"{text} mock:{marker}"}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


# (case, script steps or None, request builder) — builder(peer) -> (method, path, headers, body)
def cases():
    ok = lambda m, s=False: ("POST", "/v1/chat/completions", None, lambda p, mk: chat(p["model"], mk, s))
    return [
        ("success", None, ok(None)),
        ("stream", None, ok(None, True)),
        ("no-credentials", None, ("POST", "/v1/chat/completions", "nocreds", None)),
        ("bad-credentials", None, ("POST", "/v1/chat/completions", "badcreds", None)),
        ("upstream-400-policy", [{"kind": "error", "status": 400,
                                  "message": "the prompt was rejected by policy"}], ok(None)),
        ("upstream-429-retry-after", [{"kind": "error", "status": 429, "message": "slow down",
                                       "headers": {"retry-after": "7"}}] * 8, ok(None)),
        ("upstream-429-once", [{"kind": "error", "status": 429, "message": "slow down",
                                "headers": {"retry-after": "7"}}], ok(None)),
        ("upstream-500-once", [{"kind": "error", "status": 500,
                                "message": "upstream internal failure"}], ok(None)),
        ("upstream-500-always", [{"kind": "error", "status": 500,
                                  "message": "upstream internal failure"}] * 8, ok(None)),
        ("upstream-context-length", [{"kind": "context_length", "max": 8192,
                                      "requested": 9000}], ok(None)),
        ("upstream-503-loading", [{"kind": "error", "status": 503,
                                   "message": "model is loading"}] * 8, ok(None)),
        ("stream-drop", [{"kind": "drop", "chunks": 3, "interval_ms": 20}], ok(None, True)),
        ("stream-error-object", [{"kind": "stream_error", "after": 2,
                                  "message": "upstream failed mid-stream"}], ok(None, True)),
        ("stream-malformed-chunk", [{"kind": "malformed", "after": 2}], ok(None, True)),
        ("upstream-400-leak", [{"kind": "error", "status": 400, "message":
                                "backend http://127.0.0.1:9/internal/v1 refused key sk-upstream-secret-123"}],
         ok(None)),
        ("models", None, ("GET", "/v1/models", None, None)),
        ("unknown-model", None, ("POST", "/v1/chat/completions", None,
                                 lambda p, mk: chat("no-such-model", mk))),
        ("bad-json", None, ("POST", "/v1/chat/completions", None, lambda p, mk: '{"model": "x", "messages": [')),
        ("wrong-method", None, ("GET", "/v1/chat/completions", None, None)),
        ("unknown-route", None, ("GET", "/v1/no-such-route", None, None)),
        ("unknown-route-root", None, ("GET", "/no-such-route", None, None)),
    ]


def peers(state):
    mock = state["MOCK_URL"]
    custom = [f"x-portkey-provider: openai", f"x-portkey-custom-host: {mock}/v1"]
    return {
        "litellm": {"url": state["LITELLM_URL"], "version": state["LITELLM_VERSION"],
                    "key": state["LITELLM_MASTER_KEY"], "model": state["LITELLM_ALIAS"],
                    "extra": [], "dir": f"litellm-{state['LITELLM_VERSION']}"},
        "litellm-noretry": {"url": state["LITELLM_NORETRY_URL"], "version": state["LITELLM_VERSION"],
                            "key": state["LITELLM_MASTER_KEY"], "model": state["LITELLM_ALIAS"],
                            "extra": [], "dir": f"litellm-{state['LITELLM_VERSION']}-num_retries-0"},
        "litellm-quiet": {"url": state["LITELLM_QUIET_URL"], "version": state["LITELLM_VERSION"],
                          "key": state["LITELLM_MASTER_KEY"], "model": state["LITELLM_ALIAS"],
                          "extra": [], "dir": f"litellm-{state['LITELLM_VERSION']}-quiet"},
        "portkey": {"url": state["PORTKEY_URL"], "version": state["PORTKEY_VERSION"],
                    "key": state["MOCK_API_KEY"], "model": state["UPSTREAM_MODEL"],
                    "extra": custom, "dir": f"portkey-{state['PORTKEY_VERSION']}"},
    }


def run_case(state, name, peer, case):
    cname, steps, (method, path, auth, build) = case
    mock = state["MOCK_URL"]
    marker = f"{name}-{cname}"
    control(mock, "DELETE", f"/__mock/scripts/{marker}")
    if steps:
        control(mock, "PUT", f"/__mock/scripts/{marker}", {"steps": steps})
    headers = list(peer["extra"])
    if auth is None:
        headers.append(f"authorization: Bearer {peer['key']}")
    elif auth == "badcreds":
        headers.append("authorization: Bearer sk-wrong-key")
    body = build(peer, marker) if build else None
    if body is None and method == "POST":
        body = chat(peer["model"], marker)
    argv = ["curl", "-sS", "-i", "-N", "--max-time", str(CURL_MAX_TIME_S), "-X", method]
    for h in headers:
        argv += ["-H", h]
    if body is not None:
        argv += ["-H", "content-type: application/json", "--data-binary", body]
    argv.append(peer["url"] + path)
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, timeout=CURL_MAX_TIME_S + 10)
    elapsed_ms = round((time.monotonic() - t0) * 1000)
    out = pathlib.Path(ROOT, "peers", "fixtures", peer["dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cname}.http").write_bytes(proc.stdout)
    records = control(mock, "GET", f"/__mock/records/{marker}")["records"]
    meta = {
        "case": cname,
        "peer": name,
        "version": peer["version"],
        "request": {"method": method, "path": path, "headers": headers, "body": body},
        "upstream_script": steps,
        "elapsed_ms": elapsed_ms,
        "curl_exit": proc.returncode,
        "curl_stderr": proc.stderr.decode(errors="replace").strip(),
        "upstream_attempts": len(records),
        "upstream_records": [{"path": r.get("path"), "outcome": r.get("outcome"),
                              "headers": r.get("headers")} for r in records],
    }
    (out / f"{cname}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    status = proc.stdout.split(b"\r\n", 1)[0].decode(errors="replace")
    print(f"{name:16} {cname:26} {status:28} attempts={len(records)} curl={proc.returncode} {elapsed_ms}ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", default=str(ROOT / ".peers" / "state.env"))
    ap.add_argument("--only", default="litellm,litellm-noretry,litellm-quiet,portkey")
    ap.add_argument("--case", default=None)
    a = ap.parse_args()
    state = read_state(a.state)
    all_peers = peers(state)
    # Markers repeat across runs; the records of a run must be its own.
    control(state["MOCK_URL"], "POST", "/__mock/reset")
    for name in a.only.split(","):
        for case in cases():
            if a.case and case[0] != a.case:
                continue
            run_case(state, name, all_peers[name], case)


if __name__ == "__main__":
    sys.exit(main())
