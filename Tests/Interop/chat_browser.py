#!/usr/bin/env python3
"""Browser test of the sockets-chat pages (Tests/SocketsTests/ChatTests.swift), with headless
Chromium driven by Selenium.

Usage: chat_browser.py --server <path to sockets-chat> --output <folder for screenshots>
       chat_browser.py --server <path> --output <folder> --tls-cert <server.pem> --tls-key <server.key>

Without --tls-cert: three browser sessions (separate Chromium processes, so separate cookies and
storage): Alice and Bob in room "lobby", Carol in room "garden". Alice comes through the index
page's form; the others open their room's URL. The script plays the conversation, restarts the
server under the open pages, closes Bob's tab, and prints ONE JSON object with what each page
showed (its message list as [kind, from, text] and its connection state at each step). The Swift
test decides.

With --tls-cert and --tls-key (a throwaway certificate the test made): sockets-chat serves
https:// and wss:// with it, and one Chromium trusts exactly that certificate's key
(--ignore-certificate-errors-spki-list with the SHA-256 of its SubjectPublicKeyInfo; no CA is
installed, no other certificate error is ignored). Alice and Bob, in two tabs of that browser,
exchange a message each way in "lobby"; every WebSocket the pages open is recorded (its URL must
be wss://). A second Chromium without the flag must refuse the page.

Exit status: 0 when the scenario ran (failures inside are reported in the JSON); 2 bad
arguments; 4 when selenium is missing; 5 when chromium or chromedriver is missing.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # pragma: no cover
    print(f"chat_browser.py: the Python package 'selenium' is required ({e}); pip install selenium", file=sys.stderr)
    sys.exit(4)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_server import ChatServer  # noqa: E402

# Debian's packages: `apt-get install chromium chromium-driver`.
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
DRIVER_CANDIDATES = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
WAIT = 15.0


def find(candidates, name):
    for c in candidates:
        if os.path.exists(c):
            return c
    found = shutil.which(name)
    if found:
        return found
    return None


class Page:
    """One browser session showing one chat page."""

    def __init__(self, label, chromium, driver_path, extra_args=()):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1000,720", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking", "--lang=en-US",
                    # Background tabs must not have their timers (the reconnect backoff) throttled.
                    "--disable-background-timer-throttling", "--disable-renderer-backgrounding"):
            options.add_argument(arg)
        for arg in extra_args:
            options.add_argument(arg)
        # An explicit driver path: Selenium Manager must not try to download anything.
        self.driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.label = label

    def state(self):
        el = self.driver.find_element(By.ID, "state")
        return el.get_attribute("data-state")

    def wait_state(self, state, timeout=WAIT):
        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda d: self.state() == state)
            return True
        except Exception:
            return False

    def items(self):
        """The message list as the page shows it: [kind, from, text] per line."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('#messages li')].map(li => [li.dataset.typ, li.dataset.from, li.dataset.text]);")

    def members(self):
        """The member list the page shows (its data-members attribute), and the text of it."""
        return self.driver.execute_script(
            "const m = document.getElementById('members'); return [JSON.parse(m.dataset.members || '[]'), m.textContent];")

    def visible_text(self):
        return self.driver.find_element(By.ID, "messages").text

    def wait_item(self, kind, sender, text, after=0, timeout=WAIT):
        """Waits until [kind, sender, text] is shown at index >= after."""
        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                lambda d: [kind, sender, text] in self.items()[after:])
            return True
        except Exception:
            return False

    def say(self, text):
        box = self.driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys(text)
        self.driver.find_element(By.CSS_SELECTOR, "#send button").click()

    def quit(self):
        try:
            self.driver.quit()
        except Exception:
            pass


class Tab(Page):
    """One tab of a browser session shared with other tabs: every use switches to it first."""

    def __init__(self, label, session, handle):
        self.label = label
        self.session = session
        self.handle = handle

    @property
    def driver(self):
        if self.session.current_window_handle != self.handle:
            self.session.switch_to.window(self.handle)
        return self.session

    def quit(self):
        pass


def wait_either(pred, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def play(server, pages, out, output_dir):
    base = server.base
    alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
    steps = out["steps"]

    def step(label, ok):
        steps.append([label, bool(ok)])
        return ok

    # Alice comes in through the index page's form.
    alice.driver.get(base + "/")
    alice.driver.find_element(By.ID, "room").send_keys("lobby")
    name = alice.driver.find_element(By.ID, "name")
    name.clear()
    name.send_keys("alice")
    alice.driver.save_screenshot(os.path.join(output_dir, "chat-index.png"))
    alice.driver.find_element(By.CSS_SELECTOR, "#join button").click()
    step("alice connected", alice.wait_state("connected"))
    out["alice_url"] = alice.driver.current_url

    bob.driver.get(base + "/rooms/lobby?name=bob")
    step("bob connected", bob.wait_state("connected"))
    # A page is "connected" when its handshake completes; the server puts the client in the room
    # just after. So in principle Bob can be in before Alice: whichever joined second is announced
    # to the other. Either notice proves both are in.
    step("alice and bob in the room", wait_either(
        lambda: ["status", "bob", "joined"] in alice.items() or ["status", "alice", "joined"] in bob.items()))
    carol.driver.get(base + "/rooms/garden?name=carol")
    step("carol connected", carol.wait_state("connected"))

    alice.say("Hello Bob! <b>not bold</b>")
    step("bob gets alice's message", bob.wait_item("message", "alice", "Hello Bob! <b>not bold</b>"))
    bob.say("Hi Alice, all good here.")
    step("alice gets bob's message", alice.wait_item("message", "bob", "Hi Alice, all good here."))
    carol.say("Anyone in the garden?")
    # Carol's own line shows at once; give a leak time to arrive in the lobby before looking.
    step("carol sees her own line", carol.wait_item("mine", "carol", "Anyone in the garden?"))
    time.sleep(0.5)
    out["before_restart"] = {k: p.items() for k, p in pages.items()}
    out["members_before_restart"] = {k: p.members() for k, p in pages.items()}
    out["alice_text"] = alice.visible_text()
    alice.driver.save_screenshot(os.path.join(output_dir, "chat-room.png"))
    out["title"] = alice.driver.title

    # Server restart under the open pages: they must notice, say so, and reconnect by themselves.
    marks = {k: len(p.items()) for k, p in pages.items()}
    port = server.port
    server.stop()
    out["states_while_down"] = {}
    for k, p in pages.items():
        p_ok = p.wait_state("disconnected", timeout=WAIT)
        out["states_while_down"][k] = p.state()
        step(f"{k} shows disconnected", p_ok)
    time.sleep(1.0)  # down for a while: at least one failed retry
    server.port = port
    server.start()
    for k, p in pages.items():
        step(f"{k} reconnected", p.wait_state("connected", timeout=30))
    # Both lobby pages are in the room again once either sees the other join.
    step("alice and bob in the room again", wait_either(
        lambda: ["status", "bob", "joined"] in alice.items()[marks["alice"]:] or
        ["status", "alice", "joined"] in bob.items()[marks["bob"]:]))
    alice.say("Still there after the restart?")
    step("bob gets the message after restart", bob.wait_item("message", "alice", "Still there after the restart?", after=marks["bob"]))
    out["after_restart"] = {k: p.items()[marks[k]:] for k, p in pages.items()}

    # Bob closes his tab (his only window: the session ends with it).
    mark_alice = len(alice.items())
    bob.driver.close()
    bob.quit()
    step("alice sees bob leave", alice.wait_item("status", "bob", "left", after=mark_alice))
    time.sleep(0.3)
    out["after_bob_left"] = {k: pages[k].items()[mark_alice if k == "alice" else 0:] for k in ("alice",)}
    out["members_after_bob_left"] = alice.members()
    out["final"] = {k: pages[k].items() for k in ("alice", "carol")}
    alice.driver.save_screenshot(os.path.join(output_dir, "chat-room-after.png"))


# Records the URL of every WebSocket a page opens (installed before the page's own scripts run).
RECORD_WEBSOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__webSocketURLs = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__webSocketURLs.push(this.url); }
  };
})();
"""


def spki_sha256(cert):
    """Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (DER), as Chromium's
    --ignore-certificate-errors-spki-list wants it."""
    pem = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def play_tls(server, cert, chromium, driver_path, out, sessions):
    """Two tabs over https:// and wss:// trusting the test key only; then a browser without it."""
    base = server.base
    steps = out["steps"]

    def step(label, ok):
        steps.append([label, bool(ok)])
        return ok

    spki = spki_sha256(cert)
    out["spki_sha256"] = spki
    session = Page("tls", chromium, driver_path, extra_args=("--ignore-certificate-errors-spki-list=" + spki,))
    sessions.append(session)
    out["browser_version"] = session.driver.capabilities.get("browserVersion")
    browser = session.driver
    alice = Tab("alice", browser, browser.current_window_handle)
    browser.switch_to.new_window("tab")
    bob = Tab("bob", browser, browser.current_window_handle)
    tabs = {"alice": alice, "bob": bob}
    for name, tab in tabs.items():
        # CDP commands go to the current tab: the recorder is installed in each.
        tab.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_WEBSOCKETS})
        tab.driver.get(f"{base}/rooms/lobby?name={name}")
        step(f"{name} connected", tab.wait_state("connected"))
    step("alice and bob in the room", wait_either(
        lambda: ["status", "bob", "joined"] in alice.items() or ["status", "alice", "joined"] in bob.items()))
    alice.say("Hello Bob, over wss")
    step("bob gets alice's message", bob.wait_item("message", "alice", "Hello Bob, over wss"))
    bob.say("Hi Alice, encrypted too")
    step("alice gets bob's message", alice.wait_item("message", "bob", "Hi Alice, encrypted too"))
    out["tabs"] = {}
    for name, tab in tabs.items():
        out["tabs"][name] = {
            "items": tab.items(),
            "state": tab.state(),
            "url": tab.driver.current_url,
            "protocol": tab.driver.execute_script("return location.protocol;"),
            "websockets": tab.driver.execute_script("return window.__webSocketURLs || [];"),
        }

    # The same page in a browser that does not trust the key: refused, no chat page.
    untrusted = Page("untrusted", chromium, driver_path)
    sessions.append(untrusted)
    result = {"error": None}
    try:
        untrusted.driver.get(f"{base}/rooms/lobby?name=eve")
    except WebDriverException as e:
        result["error"] = e.msg or str(e)
    try:
        result["title"] = untrusted.driver.title
        result["has_chat"] = untrusted.driver.execute_script("return document.getElementById('state') !== null;")
        result["text"] = untrusted.driver.execute_script("return document.body ? document.body.innerText.slice(0, 300) : '';")
    except WebDriverException as e:
        result["has_chat"] = None
        result["inspect_error"] = e.msg or str(e)
    out["untrusted"] = result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--output", required=True, help="folder for the screenshots")
    parser.add_argument("--tls-cert", help="serve https:// with this certificate (the TLS scenario)")
    parser.add_argument("--tls-key", help="the certificate's private key")
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")

    chromium = find(CHROMIUM_CANDIDATES, "chromium")
    driver = find(DRIVER_CANDIDATES, "chromedriver")
    if not chromium or not driver:
        print(f"chat_browser.py: chromium ({chromium}) and chromedriver ({driver}) are required; "
              "apt-get install chromium chromium-driver", file=sys.stderr)
        return 5
    os.makedirs(args.output, exist_ok=True)

    tls = args.tls_cert is not None
    out = {"scenario": "browser-tls" if tls else "browser", "steps": [], "chromium": chromium, "driver": driver}
    server = ChatServer(args.server, extra_args=["--tls-cert", args.tls_cert, "--tls-key", args.tls_key] if tls else [])
    pages = {}
    sessions = []
    try:
        server.start()
        out["base"] = server.base
        if tls:
            play_tls(server, args.tls_cert, chromium, driver, out, sessions)
        else:
            for label in ("alice", "bob", "carol"):
                pages[label] = Page(label, chromium, driver)
            out["browser_version"] = pages["alice"].driver.capabilities.get("browserVersion")
            play(server, pages, out, args.output)
            out["screenshots"] = sorted(f for f in os.listdir(args.output) if f.startswith("chat-") and f.endswith(".png"))
    except Exception as e:
        out["exception"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    finally:
        for p in list(pages.values()) + sessions:
            p.quit()
        out["server_exit"] = server.stop()
        out["server_log_tail"] = server.log_tail(2500)
        server.remove_log()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
