"""`make demo`: a scripted client and mitra, against a running `make run` (public :3000).

Client logs in by OTP (test bypass), mitra by password; the client creates a session and pays on
the local checkout page while no Bestie is online, and hears its place in the queue live (from the
payment, then from the scheduler's next tick); the mitra goes online and gets the offer live; the
mitra accepts; both chat over the WebSocket (/ws/v1/); the client ends the session and rates it.
Each step is printed; any failure (an HTTP error, a live event that does not come) exits non-zero.

    python scripts/demo.py [--base-url http://127.0.0.1:3000] [--mitra-base-url URL]

--mitra-base-url puts the mitra on another public process than the client (with VALKEY_URL, the
events cross processes through Valkey; CI runs it so, scripts/ci_newcomer.py).
"""

import argparse
import html
import json
import re
import sys
import time
import uuid
from urllib.parse import urljoin

import requests
from websockets.sync.client import connect

CLIENT_PHONE = "+6281200000001"
OTP_CODE = "123456"
MITRA_PHONE = "+6281100000001"
MITRA_PASSWORD = "bestie-demo-2026"


def step(text):
    print(f"\n== {text}", flush=True)


def call(http, method, url, token=None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = http.request(method, url, headers=headers, timeout=15, **kwargs)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    print(f"   {method} {url.split('/api/v1')[-1]} → {response.status_code}", flush=True)
    if response.status_code >= 400:
        sys.exit(f"   failed: {json.dumps(body, ensure_ascii=False)[:500]}")
    return body


def request_otp(http, api):
    """Ask for an OTP; a run right after another meets the resend cooldown: wait it out."""
    while True:
        response = http.post(f"{api}/auth/otp/request", json={"phone": CLIENT_PHONE}, timeout=15)
        wait = int(response.headers.get("Retry-After") or 0)
        if response.status_code != 429 or not 0 < wait <= 120:
            break
        print(f"   POST /auth/otp/request → 429 (an OTP went to {CLIENT_PHONE} just now): waiting {wait} s")
        time.sleep(wait)
    print(f"   POST /auth/otp/request → {response.status_code}", flush=True)
    if response.status_code >= 400:
        sys.exit(f"   failed: {response.text[:500]}")


def pay(http, invoice_url):
    """Submit the local checkout's "Bayar" form (whatever its fields are)."""
    page = http.get(invoice_url, timeout=15)
    page.raise_for_status()
    forms = re.findall(r"<form\b([^>]*)>(.*?)</form>", page.text, re.S | re.I)
    chosen = next(((a, b) for a, b in forms if re.search(r"bayar", b, re.I)), forms[0] if forms else None)
    if chosen is None:
        sys.exit("   no form on the checkout page")
    attrs, inner = chosen
    action = re.search(r'action="([^"]*)"', attrs)
    url = urljoin(invoice_url, html.unescape(action.group(1))) if action else invoice_url
    fields = {}
    for tag in re.findall(r"<(?:input|button)\b[^>]*>", inner, re.I):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and (not re.search(r"<button", tag, re.I) or re.search(r"bayar|pay|paid", tag, re.I)):
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    response = http.post(url, data=fields, headers={"Referer": invoice_url}, timeout=15)
    print(f"   POST {url.split('://')[-1].split('/', 1)[-1]} (Bayar) → {response.status_code}", flush=True)
    if response.status_code >= 400:
        sys.exit("   payment failed")


class Socket:
    def __init__(self, base_url, token, name):
        url = base_url.replace("http://", "ws://").replace("https://", "wss://") + "/ws/v1/"
        self.ws = connect(url, additional_headers={"Authorization": f"Bearer {token}"}).__enter__()
        self.name = name
        self.pending = []

    def send(self, frame):
        self.ws.send(json.dumps(frame))

    def expect(self, frame_type, timeout=15, **fields):
        for index, frame in enumerate(self.pending):
            if frame.get("type") == frame_type and all(frame.get(k) == v for k, v in fields.items()):
                return self.pending.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if time.monotonic() > deadline:
                    raise TimeoutError
                frame = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                sys.exit(f"   failed: no {frame_type} frame on the {self.name}'s socket within {timeout} s")
            if frame.get("type") == frame_type and all(frame.get(k) == v for k, v in fields.items()):
                return frame
            self.pending.append(frame)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://127.0.0.1:3000")
    parser.add_argument("--mitra-base-url", default=None, help="the mitra's public process (default: same)")
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    mitra_base = (args.mitra_base_url or base).rstrip("/")
    api, mitra_api = f"{base}/api/v1", f"{mitra_base}/api/v1"
    client_http, mitra_http = requests.Session(), requests.Session()

    step(f"client logs in by OTP ({CLIENT_PHONE}, test code)")
    request_otp(client_http, api)
    client = call(
        client_http, "POST", f"{api}/auth/otp/verify", json={"phone": CLIENT_PHONE, "code": OTP_CODE}
    )
    client_token = client["access"]
    print(f"   client user {client['user'].get('id')}")

    step(f"mitra logs in ({MITRA_PHONE})")
    login = {"phone": MITRA_PHONE, "password": MITRA_PASSWORD}
    mitra = call(mitra_http, "POST", f"{mitra_api}/auth/mitra/login", json=login)
    mitra_token = mitra["access"]

    step("both open the chat socket (/ws/v1/)")
    mitra_socket = Socket(mitra_base, mitra_token, "mitra")
    client_socket = Socket(base, client_token, "client")
    print(f"   mitra: {mitra_socket.expect('hello')}")
    print(f"   client: {client_socket.expect('hello')}")

    # Offline first: a mitra left online by an earlier run would take the session at once.
    call(mitra_http, "POST", f"{mitra_api}/mitra/status", mitra_token, json={"online": False})

    step("client creates a session (curhat-15)")
    session = call(client_http, "POST", f"{api}/sessions", client_token, json={"package": "curhat-15"})
    session_id = session["id"]
    invoice_url = (session.get("payment") or {}).get("invoice_url")
    print(f"   session {session_id}, status {session['status']}, invoice {invoice_url}")

    step("client pays on the local checkout page")
    pay(client_http, invoice_url)

    step("no Bestie online yet: the client hears its place in the queue live")
    for source in ("after the payment", "from the scheduler"):
        position = client_socket.expect("queue.position", timeout=30, session_id=session_id)
        print(f"   position {position['position']} ({source})")

    step("mitra goes online")
    call(mitra_http, "POST", f"{mitra_api}/mitra/status", mitra_token, json={"online": True})

    step("mitra gets the offer and accepts")
    offer = mitra_socket.expect("session.offer", timeout=30)
    print(f"   offer for session {offer['session']['id']}")
    accepted = call(mitra_http, "POST", f"{mitra_api}/sessions/{session_id}/accept", mitra_token)
    print(f"   status {accepted['status']}, ends at {accepted.get('ends_at')}")

    step("they chat over the WebSocket")
    script = [
        (client_socket, mitra_socket, "Halo kak, aku lagi sedih banget soal kerjaan."),
        (mitra_socket, client_socket, "Halo, aku di sini dengerin kamu. Mau cerita dari mana?"),
        (client_socket, mitra_socket, "Atasanku marah terus. Boleh minta WA kakak? 0812-3456-7890"),
        (mitra_socket, client_socket, "Kita ngobrol di sini aja ya, biar aman. Ceritain pelan-pelan."),
    ]
    for sender, receiver, body in script:
        cmid = uuid.uuid4().hex
        sender.send({"type": "typing", "session_id": session_id, "is_typing": True})
        sender.send({"type": "message.send", "session_id": session_id, "client_msg_id": cmid, "body": body})
        ack = sender.expect("message.ack", client_msg_id=cmid)
        new = receiver.expect("message.new", client_msg_id=cmid)
        masked = " (masked)" if new["is_masked"] else ""
        print(f"   {sender.name} → {receiver.name}  #{ack['seq']}: {new['body']}{masked}")
        receiver.send({"type": "read", "session_id": session_id, "up_to_seq": new["seq"]})
        print(f"   {receiver.name} read up to #{sender.expect('read')['up_to_seq']}")

    step("client syncs the whole conversation (as after a reconnect)")
    client_socket.pending.clear()
    client_socket.send({"type": "sync", "session_id": session_id, "after_seq": 0})
    done = client_socket.expect("sync.done")
    replayed = [f for f in client_socket.pending if f.get("type") == "message.new"]
    print(f"   {len(replayed)} messages replayed, last seq {done['last_seq']}")

    step("client ends the session and rates the Bestie")
    ended = call(client_http, "POST", f"{api}/sessions/{session_id}/end", client_token)
    print(f"   status {ended['status']} ({ended.get('end_reason')})")
    call(
        client_http,
        "POST",
        f"{api}/sessions/{session_id}/rating",
        client_token,
        json={"score": 5, "comment": "Makasih kak!"},
    )

    step("mitra goes offline")
    call(mitra_http, "POST", f"{mitra_api}/mitra/status", mitra_token, json={"online": False})

    client_socket.ws.close()
    mitra_socket.ws.close()
    step("done")


if __name__ == "__main__":
    main()
