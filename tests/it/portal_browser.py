"""The tenant portal in a real browser (Debian's chromium over WebDriver), for
tests/it/portal_pages.rs. A portal link opens the tenant's pages and leaves no token in the
address bar; another tenant's pages are refused; a read-only session's pages offer no change;
and the portal works inside another site's frame (its cookie is SameSite=None, Secure,
Partitioned). Prints one JSON object: what it saw.
"""

import http.server
import json
import os
import sys
import threading

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as arrived
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_common import press, shot, start_driver  # noqa: E402

BASE = os.environ["HOOKLINE_URL"]
TENANT = os.environ["HOOKLINE_TENANT"]
OTHER = os.environ["HOOKLINE_OTHER_TENANT"]
FULL = os.environ["HOOKLINE_PORTAL_TOKEN"]
READ_ONLY = os.environ["HOOKLINE_PORTAL_READ_ONLY_TOKEN"]
FRAMED = os.environ["HOOKLINE_PORTAL_FRAMED_TOKEN"]


def platform_page(port_box):
    """A platform's dashboard on http://localhost:<port>/ (another site than the node's
    127.0.0.1) that embeds the portal link in a frame."""
    page = (
        "<!doctype html><title>Platform</title><h1>Your webhooks</h1>"
        f'<iframe id="portal" src="{BASE}/portal/#{FRAMED}" width="1200" height="600"></iframe>'
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_box.append(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    driver = start_driver()
    seen = {}
    wait = WebDriverWait(driver, 10, poll_frequency=0.2)
    try:
        driver.get(BASE + "/portal/#" + FULL)
        wait.until(arrived.url_contains("/portal/t/"))
        seen["landed"] = driver.current_url
        cookie = driver.get_cookie("hookline_portal") or {}
        seen["cookie"] = {k: cookie.get(k) for k in ("httpOnly", "sameSite", "path")}
        seen["who"] = driver.find_element(By.CSS_SELECTOR, "nav .who").text
        seen["descriptions"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td.description")]
        seen["bold_in_description"] = len(driver.find_elements(By.CSS_SELECTOR, "td.description b"))
        seen["title"] = driver.title
        shot(driver, "portal", seen)
        # Back: no history entry holds the token.
        driver.back()
        seen["back_url"] = driver.current_url

        # The first page again, without a token: on to this browser's session.
        driver.get(BASE + "/portal/")
        wait.until(arrived.url_contains("/portal/t/"))
        seen["continued_to"] = driver.current_url
        press(driver, "td.id a", arrived.url_contains("/e/"))
        seen["endpoint_page"] = driver.current_url
        press(driver, "#disable", arrived.presence_of_element_located((By.ID, "enable")))
        seen["state_after_disable"] = driver.find_element(By.CSS_SELECTOR, ".endpoint-state").text
        press(driver, "#enable", arrived.presence_of_element_located((By.ID, "disable")))
        seen["state_after_enable"] = driver.find_element(By.CSS_SELECTOR, ".endpoint-state").text
        endpoint_page = driver.current_url

        driver.get(BASE + "/portal/t/" + OTHER)
        seen["other_tenant_error"] = driver.find_element(By.CSS_SELECTOR, ".error").text
        seen["other_tenant_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "td.id"))

        # A read-only session: a fresh browser profile's cookies.
        driver.delete_all_cookies()
        driver.get(BASE + "/portal/#" + READ_ONLY)
        wait.until(arrived.url_contains("/portal/t/"))
        seen["read_only_who"] = driver.find_element(By.CSS_SELECTOR, "nav .who").text
        driver.get(endpoint_page)
        seen["read_only_buttons"] = [b.get_attribute("id") for b in driver.find_elements(By.CSS_SELECTOR, "main button")]
        seen["read_only_links"] = [a.get_attribute("id") for a in driver.find_elements(By.CSS_SELECTOR, "a.action")]
        seen["read_only_state"] = driver.find_element(By.CSS_SELECTOR, ".endpoint-state").text

        # Inside a platform's page on another site.
        driver.delete_all_cookies()
        port = []
        server = platform_page(port)
        try:
            driver.get(f"http://localhost:{port[0]}/")
            driver.switch_to.frame(driver.find_element(By.ID, "portal"))
            framed = WebDriverWait(driver, 10, poll_frequency=0.2).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "td.id a") or d.find_elements(By.CSS_SELECTOR, ".error")
            )
            seen["framed"] = [e.text for e in framed]
            seen["framed_who"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "nav .who")]
            driver.switch_to.default_content()
            shot(driver, "portal-framed", seen)
        finally:
            server.shutdown()
    finally:
        driver.quit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
