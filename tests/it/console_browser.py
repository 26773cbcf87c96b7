"""The console in a real browser (Debian's chromium, driven over WebDriver by selenium), for
tests/it/console.rs. Prints one JSON object: what it saw at each step, for the Rust test to
check. Screenshots go to HOOKLINE_SHOTS, with how many distinct byte values each PNG's pixels
hold (a blank page has very few).
"""

import json
import os
import sys
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as arrived
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_common import press, shot, start_driver  # noqa: E402

BASE = os.environ["HOOKLINE_URL"]
ADMIN = os.environ["HOOKLINE_ADMIN"]
TENANT = os.environ["HOOKLINE_TENANT"]
FORM_URL = os.environ["HOOKLINE_FORM_URL"]
DEAD_LETTERS = os.environ["HOOKLINE_DEAD_LETTERS"]


def attempt_codes(driver):
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.attempts td.status-code")]


def until(driver, check, seconds=15):
    """Reload the page until `check(driver)` holds."""

    def reloaded(d):
        d.refresh()
        return check(d)

    WebDriverWait(driver, seconds, poll_frequency=0.3).until(reloaded)


def form_flow(driver, seen):
    """An endpoint made through the form, a test event sent to it and seen delivered in the
    log, its attempt opened and replayed; then edited, looked up, and deleted."""
    driver.get(BASE + "/console/t/" + TENANT)
    press(driver, "#new", arrived.presence_of_element_located((By.ID, "new-endpoint")))
    driver.find_element(By.ID, "url").send_keys(FORM_URL)
    driver.find_element(By.ID, "description").send_keys("made in the form")
    driver.find_element(By.ID, "event_types").send_keys("webhook.test, order.*")
    press(driver, "#create", arrived.url_contains("/e/ep_"))
    created = driver.current_url
    seen["created_page"] = created
    seen["created_url"] = driver.find_element(By.CSS_SELECTOR, "p.url").text
    press(driver, "#test", arrived.presence_of_element_located((By.ID, "test-delivery")))
    notice = driver.find_element(By.CSS_SELECTOR, ".notice").text
    seen["test_notice"] = notice
    test_event = notice.split()[2]

    press(driver, "a[href*='/deliveries?endpoint_id=']", arrived.url_contains("/deliveries?"))
    until(driver, lambda d: [td.text for td in d.find_elements(By.CSS_SELECTOR, "table.log td.status")] == ["delivered"])
    seen["log_statuses"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.log td.status")]
    shot(driver, "deliveries", seen)
    press(driver, "table.log td.id a", arrived.url_contains("/d/dlv_"))
    seen["form_attempts"] = attempt_codes(driver)
    press(driver, "#replay", arrived.url_contains("replayed=1"))
    until(driver, lambda d: len(attempt_codes(d)) >= 2)
    seen["form_attempts_after_replay"] = attempt_codes(driver)

    # Rotate the secret (the old one kept a minute), then reveal the new one.
    driver.get(created)
    overlap = driver.find_element(By.NAME, "overlap_s")
    overlap.clear()
    overlap.send_keys("60")
    press(driver, "#rotate", arrived.url_contains("rotated=1"))
    press(driver, "#secret", arrived.presence_of_element_located((By.CSS_SELECTOR, "code.secret")))
    seen["revealed"] = driver.find_element(By.CSS_SELECTOR, "code.secret").text

    # Edit: every field as JSON; what the API refuses comes back with its message.
    driver.get(created + "/edit")
    area = driver.find_element(By.ID, "settings")
    settings = json.loads(area.get_attribute("value"))
    seen["edit_fields"] = sorted(settings)
    settings["description"] = "edited in the form"
    settings["timeout_ms"] = 5000
    area.clear()
    area.send_keys(json.dumps(settings))
    press(driver, "#save", arrived.url_to_be(created))
    driver.get(created + "/edit")
    area = driver.find_element(By.ID, "settings")
    area.clear()
    area.send_keys('{"timeout_ms": 5}')
    press(driver, "#save", arrived.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    seen["edit_error"] = driver.find_element(By.CSS_SELECTOR, ".error").text

    # The test event, looked up by id: its payload and where it went.
    driver.get(BASE + "/console/t/" + TENANT + "/events")
    driver.find_element(By.NAME, "id").send_keys(test_event)
    press(driver, "#find", arrived.presence_of_element_located((By.CSS_SELECTOR, ".event-type")))
    seen["event_type"] = driver.find_element(By.CSS_SELECTOR, ".event-type").text
    seen["event_went_to"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.event-deliveries td.status")]

    # Delete, after a page that says what it drops.
    driver.get(created + "/delete")
    seen["pending_before_delete"] = driver.find_element(By.ID, "pending").text
    press(driver, "#confirm-delete", arrived.url_contains("deleted="))
    seen["delete_notice"] = driver.find_element(By.CSS_SELECTOR, ".notice").text


def sources_flow(driver, seen):
    """A source made through the form (a refused one first, with the API's message), a request
    to its ingest URL refused, and that refusal among its recent rejections."""
    driver.get(BASE + "/console/t/" + TENANT)
    press(driver, "#sources", arrived.presence_of_element_located((By.ID, "new-source")))
    driver.find_element(By.ID, "name").send_keys("Billing provider")
    Select(driver.find_element(By.ID, "kind")).select_by_value("hmac")
    press(driver, "#create-source", arrived.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    seen["source_error"] = driver.find_element(By.CSS_SELECTOR, ".error").text
    Select(driver.find_element(By.ID, "kind")).select_by_value("stripe")
    driver.find_element(By.ID, "secret").send_keys("whsec_console_test_secret")
    press(driver, "#create-source", arrived.url_contains("/sources/src_"))
    seen["source_kind"] = driver.find_element(By.CSS_SELECTOR, ".source-kind").text
    ingest = driver.find_element(By.CSS_SELECTOR, "dd.url").text
    seen["source_secret_shown"] = "whsec_console_test_secret" in driver.page_source
    request = urllib.request.Request(BASE + ingest, data=b"{}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=5)
        seen["unsigned_status"] = 200
    except urllib.error.HTTPError as refused:
        seen["unsigned_status"] = refused.code
    until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "table.rejections td.reason")) == 1)
    seen["rejection_reasons"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.rejections td.reason")]
    press(driver, "main p a", arrived.url_to_be(BASE + "/console/t/" + TENANT + "/sources"))
    seen["source_names"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td.source-name")]


def dead_letters(driver, seen):
    """An endpoint whose receiver answered 410: its dead letter, replayed from the page."""
    driver.get(BASE + DEAD_LETTERS)
    until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "table.letters td.reason")) == 1)
    seen["letter_reasons"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.letters td.reason")]
    shot(driver, "dead-letters", seen)
    press(driver, "#replay-all", arrived.url_contains("replayed="))
    seen["replay_all_notice"] = driver.find_element(By.CSS_SELECTOR, ".notice").text


def main():
    driver = start_driver()
    seen = {"shots": {}}
    try:
        driver.get(BASE + "/console/")
        seen["sign_in_heading"] = driver.find_element(By.TAG_NAME, "h2").text
        shot(driver, "sign-in", seen)

        driver.find_element(By.ID, "token").send_keys("not-the-token")
        press(driver, "main form button", arrived.presence_of_element_located((By.CSS_SELECTOR, ".error")))
        seen["wrong_token_error"] = driver.find_element(By.CSS_SELECTOR, ".error").text

        driver.find_element(By.ID, "token").send_keys(ADMIN)
        press(driver, "main form button", arrived.url_contains("/console/tenants"))
        seen["after_sign_in"] = driver.current_url
        cookie = driver.get_cookie("hookline_console") or {}
        seen["cookie"] = {k: cookie.get(k) for k in ("httpOnly", "sameSite", "path")}
        shot(driver, "tenants", seen)

        driver.find_element(By.ID, "tenant").send_keys(TENANT)
        press(driver, "main form button", arrived.url_contains("/console/t/"))
        seen["tenant_page"] = driver.current_url
        seen["descriptions"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td.description")]
        seen["bold_in_description"] = len(driver.find_elements(By.CSS_SELECTOR, "td.description b"))
        seen["title"] = driver.title
        seen["states"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td.state")]
        seen["success_rates"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td.success-rate")]
        shot(driver, "endpoints", seen)

        press(driver, "td.id a", arrived.url_contains("/e/"))
        seen["endpoint_page"] = driver.current_url
        seen["success_bars"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.success"))
        seen["bar_titles"] = [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "svg.chart title")]
        seen["delivery_statuses"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.deliveries td.status")]
        seen["summary"] = driver.find_element(By.CSS_SELECTOR, "p.summary").text
        seen["latency_points"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.latency circle"))
        shot(driver, "endpoint", seen)
        endpoint_url = driver.current_url
        press(driver, "#range-24h", arrived.url_contains("range=24h"))
        seen["summary_24h"] = driver.find_element(By.CSS_SELECTOR, "p.summary").text
        seen["hour_bars_24h"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.success"))
        driver.get(endpoint_url)
        press(driver, "#disable", arrived.presence_of_element_located((By.ID, "enable")))
        seen["state_after_disable"] = driver.find_element(By.CSS_SELECTOR, ".endpoint-state").text
        press(driver, "#enable", arrived.presence_of_element_located((By.ID, "disable")))
        seen["state_after_enable"] = driver.find_element(By.CSS_SELECTOR, ".endpoint-state").text
        seen["back_on_endpoint_page"] = driver.current_url == endpoint_url

        press(driver, "table.deliveries td.id a", arrived.url_contains("/d/dlv_"))
        seen["delivery_page"] = driver.current_url
        seen["attempt_codes"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.attempts td.status-code")]
        press(driver, "#replay", arrived.url_contains("replayed=1"))
        seen["replay_notice"] = driver.find_element(By.CSS_SELECTOR, ".notice").text

        def two_attempts(d):
            d.refresh()
            return len(d.find_elements(By.CSS_SELECTOR, "table.attempts td.status-code")) >= 2

        WebDriverWait(driver, 15, poll_frequency=0.3).until(two_attempts)
        seen["attempt_codes_after_replay"] = [
            td.text for td in driver.find_elements(By.CSS_SELECTOR, "table.attempts td.status-code")
        ]
        shot(driver, "delivery", seen)

        form_flow(driver, seen)
        sources_flow(driver, seen)
        dead_letters(driver, seen)

        press(driver, "nav form button", arrived.url_to_be(BASE + "/console/"))
        seen["after_sign_out"] = driver.current_url
        driver.get(BASE + "/console/tenants")
        seen["tenants_after_sign_out"] = driver.current_url
    finally:
        driver.quit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
