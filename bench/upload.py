"""A 200 MB video, uploaded and sent inline to a relay: the server's memory and throughput.

    .venv/bin/python bench/upload.py [--mb 200] [--keep]

Starts, each as its own process on loopback:
- a sink: a bare HTTP server standing in for the relay; it writes the request
  body to disk as it arrives, timing its first and last byte, and answers a
  short SSE reply;
- the app (`manage.py serve`, SQLite), with a relay pointing at the sink in
  the `image_url-for-all` dialect and no PUBLIC_BASE_URL, so the video must
  go inline as a data URI.

Makes a real QuickTime video of the requested size with ffmpeg (raw frames,
so it is large without long encoding), warms the server up with a small
message, then posts the video through the composer's endpoint (multipart,
as the browser does) and samples the server's resident memory every few
milliseconds until the reply is saved. Finally it checks that the body the
sink received is valid JSON whose data URI decodes to the very same file.

Reports the peak resident memory above the warmed-up baseline during the
upload and during the send, and the send's throughput as the sink saw it.
Targets: ≤ 64 MB above baseline, ≥ 200 MB/s.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import free_port  # noqa: E402

PASSWORD = "bench-password-123"
MB = 1024 * 1024
FRAME = (1280, 720)
FRAME_BYTES = FRAME[0] * FRAME[1] * 2  # uyvy422, QuickTime's "2vuy" raw format


# -- the sink (runs as `upload.py --sink PORT DIR`) ----------------------------------


def sink_main(port: int, directory: Path) -> None:
    """Blocking sockets and one big receive buffer: the sink must not be the bottleneck."""
    import socketserver

    count = 0
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            nonlocal count
            sock = self.request
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            if method == "GET":
                body = json.dumps({"data": [{"id": "bench-video-model"}]}).encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
                return
            length = int(headers.get("content-length", "-1"))
            with lock:
                count += 1
                target = directory / f"body-{count}.json"
            buffer = bytearray(8 * MB)
            view = memoryview(buffer)
            first = time.monotonic() if rest else None
            received = len(rest)
            with target.open("wb") as out:
                out.write(rest)
                while received < length:
                    n = sock.recv_into(view)
                    if not n:
                        break
                    if first is None:
                        first = time.monotonic()
                    out.write(view[:n])
                    received += n
            last = time.monotonic()
            events = [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {"choices": [{"index": 0, "delta": {"content": "Received."},
                              "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 1400, "completion_tokens": 2,
                                          "total_tokens": 1402}},
            ]
            stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
            stream += b"data: [DONE]\n\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(stream), stream))
            print(json.dumps({"path": path, "file": str(target), "bytes": received,
                              "declared": length, "first": first, "last": last,
                              "chunked": "chunked" in headers.get("transfer-encoding", "")}),
                  flush=True)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


# -- the bench ---------------------------------------------------------------------------


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Resident memory and CPU time of the server, every few milliseconds."""

    def __init__(self, pid: int, interval: float = 0.003) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int, float]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            self.samples.append((time.monotonic(), rss_kb(self.pid), cpu_seconds(self.pid)))
            time.sleep(self.interval)

    def peak(self, start: float, end: float) -> int:
        within = [kb for t, kb, _ in self.samples if start <= t <= end]
        return max(within) if within else 0

    def cpu_between(self, start: float, end: float) -> float:
        within = [cpu for t, _, cpu in self.samples if start <= t <= end]
        return within[-1] - within[0] if len(within) > 1 else float("nan")


def make_video(path: Path, megabytes: int) -> None:
    frames = max(1, int(megabytes * MB // FRAME_BYTES))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={FRAME[0]}x{FRAME[1]}:rate=30", "-frames:v", str(frames),
         "-c:v", "rawvideo", "-pix_fmt", "uyvy422", str(path)],
        check=True,
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(4 * MB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_uri_sha256(body_path: Path) -> tuple[str, str]:
    """(MIME, sha256 of the decoded file) of the one data URI in a request body file,
    read in pieces so the check itself stays small."""
    marker = b'"url":"data:'
    with body_path.open("rb") as fh:
        head = fh.read(64 * 1024)
        start = head.index(marker) + len(marker)
        comma = head.index(b",", start)
        mime = head[start:comma].decode().removesuffix(";base64")
        fh.seek(comma + 1)
        digest = hashlib.sha256()
        carry = b""
        while True:
            chunk = fh.read(4 * MB)
            if not chunk:
                raise AssertionError("the data URI never ends")
            end = chunk.find(b'"')
            piece = carry + (chunk if end < 0 else chunk[:end])
            usable = len(piece) - len(piece) % 4 if end < 0 else len(piece)
            digest.update(base64.b64decode(piece[:usable], validate=True))
            carry = piece[usable:]
            if end >= 0:
                return mime, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="video size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="measured sends (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    sink_port, app_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
           "MEDIA_ROOT": str(workdir / "media"), "SIMULATOR_ENABLED": "false",
           "RELAY_ALLOW_PRIVATE": "true",  # the standalone simulator on loopback
           "DEBUG": "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32),
           "LOG_LEVEL": "WARNING", "PUBLIC_BASE_URL": ""}
    for name in ("RELAY_BASE_URL", "REDIS_URL"):
        env.pop(name, None)
    processes: list[subprocess.Popen] = []
    try:
        video = workdir / "bench.mov"
        print(f"making a {args.mb} MiB QuickTime video with ffmpeg…", flush=True)
        make_video(video, args.mb)
        size = video.stat().st_size
        small = workdir / "small.mov"
        make_video(small, 1)

        (workdir / "sink").mkdir()
        sink = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(sink_port), str(workdir / "sink")],
            stdout=subprocess.PIPE, text=True)
        processes.append(sink)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        ids = subprocess.run([*manage, "shell", "-c", f"""
from django.contrib.auth.models import User
from conversations.models import ChatModel, Conversation, Relay
user = User.objects.create_user('bench', '', '{PASSWORD}')
relay = Relay.objects.create(name='sink', base_url='http://127.0.0.1:{sink_port}',
                             api_key='bench-key', dialect='image_url-for-all')
model = ChatModel.objects.create(relay=relay, model_id='gemini-2.5-flash', accepts_image=True,
                                 accepts_video=True, display_name='bench')
print(*[Conversation.objects.create(owner=user, model=model).pk for _ in range({args.runs + 1})])
"""], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.split()
        warm_up_id, *measured_ids = ids[-(args.runs + 1):]
        app = subprocess.Popen(
            [*manage, "serve", "--port", str(app_port), "--no-migrate", "--log-level",
             "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        processes.append(app)
        base = f"http://127.0.0.1:{app_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/login/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.1)

        client = httpx.Client(base_url=base, timeout=600)
        client.get("/login/")
        client.post("/login/", data={"username": "bench", "password": PASSWORD,
                                     "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        db = workdir / "bench.sqlite3"

        def post(path: Path, conversation: str) -> float:
            started = time.monotonic()
            with path.open("rb") as fh:
                response = client.post(
                    f"/c/{conversation}/messages/", data={"text": "What is in this video?"},
                    files={"files": (path.name, fh, "video/quicktime")},
                    headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
            assert response.status_code == 200, response.text[:500]
            return started

        def wait_for_reply() -> dict:
            record = json.loads(sink.stdout.readline())
            until = time.monotonic() + 120
            while time.monotonic() < until:
                with sqlite3.connect(db) as connection:
                    status, error = connection.execute(
                        "SELECT status, error FROM conversations_message "
                        "WHERE role='assistant' ORDER BY id DESC LIMIT 1").fetchone()
                if status not in ("pending", "streaming"):
                    assert status == "complete", f"the reply ended {status}: {error}"
                    return record
                time.sleep(0.02)
            raise AssertionError("the reply was not saved in time")

        # Warm-up: every code path once (upload, checks, ffprobe, streaming), then rest.
        post(small, warm_up_id)  # its own conversation: the measured body holds one video
        wait_for_reply()
        time.sleep(1.0)
        baseline = rss_kb(app.pid)

        expected_digest = sha256_file(video)
        runs = []
        for conversation_id in measured_ids:
            sampler = Sampler(app.pid)
            sampler.start()
            started = post(video, conversation_id)
            uploaded = time.monotonic()
            record = wait_for_reply()
            done = time.monotonic()
            sampler.running = False
            sampler.join()
            assert record["bytes"] == record["declared"], "the sink got fewer bytes than declared"
            with open(record["file"], "rb") as fh:
                fh.seek(-64, os.SEEK_END)
                assert fh.read().endswith(b"}"), "the body is not a complete JSON object"
            mime, digest = data_uri_sha256(Path(record["file"]))
            assert mime == "video/mov", mime
            assert digest == expected_digest, "the data URI is not the uploaded file"
            seconds = record["last"] - record["first"]
            cpu = sampler.cpu_between(record["first"], record["last"])
            runs.append({
                "upload_peak": sampler.peak(started, record["first"]) - baseline,
                "send_peak": sampler.peak(record["first"], done) - baseline,
                "upload_s": uploaded - started, "send_s": seconds, "cpu_s": cpu,
                "body": record["bytes"], "end_to_end": done - started,
            })
            os.unlink(record["file"])
            r = runs[-1]
            print(f"run {len(runs)}: upload {r['upload_s']:.2f} s, peak +"
                  f"{r['upload_peak'] / 1024:.1f} MiB; send {r['send_s']:.2f} s "
                  f"({r['body'] / 1e6 / r['send_s']:.0f} MB/s), peak +"
                  f"{r['send_peak'] / 1024:.1f} MiB, server CPU {r['cpu_s']:.2f} s", flush=True)

        body = runs[0]["body"]
        best = min(runs, key=lambda r: r["send_s"])
        median = sorted(runs, key=lambda r: r["send_s"])[len(runs) // 2]
        cpu = statistics.median(r["cpu_s"] for r in runs)
        print()
        print(f"video: {size / 1e6:.1f} MB ({size / MB:.1f} MiB) QuickTime, sent inline as "
              "data:video/mov;base64 in an image_url part (image_url-for-all)")
        print(f"request body at the sink: {body / 1e6:.1f} MB, Content-Length framed; "
              "every run's data URI decodes to the uploaded file (sha256)")
        print(f"server baseline RSS (warmed up): {baseline / 1024:.1f} MiB; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"peak RSS above baseline, upload + checks + storing: "
              f"{max(r['upload_peak'] for r in runs) / 1024:.1f} MiB (worst of {len(runs)})")
        print(f"peak RSS above baseline, sending to the relay:      "
              f"{max(r['send_peak'] for r in runs) / 1024:.1f} MiB (worst of {len(runs)}; "
              "target ≤ 64 MB)")
        print(f"send throughput at the sink: median {body / 1e6 / median['send_s']:.0f} MB/s, "
              f"best {body / 1e6 / best['send_s']:.0f} MB/s of request body "
              f"(= {size / 1e6 / median['send_s']:.0f} / {size / 1e6 / best['send_s']:.0f} "
              "MB/s of video; target ≥ 200 MB/s)")
        print(f"server CPU per send: {cpu:.2f} s → {body / 1e6 / cpu:.0f} MB/s of body per "
              "busy core (what an unloaded core would sustain)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        sink_main(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
