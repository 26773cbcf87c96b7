"""What the browser tests' scripts share: a headless Chromium (Debian's, driven over WebDriver
by selenium), screenshots checked for blankness, and a click that survives a lost one."""

import os
import struct
import sys
import zlib

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def start_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def pixel_variety(png):
    """How many distinct byte values the decompressed pixel rows of a PNG hold."""
    pos, data = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        if kind == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(data)))


def shot(driver, name, seen):
    """A screenshot into HOOKLINE_SHOTS, and how varied its pixels are into seen["shots"]."""
    png = driver.get_screenshot_as_png()
    with open(os.path.join(os.environ["HOOKLINE_SHOTS"], name + ".png"), "wb") as f:
        f.write(png)
    seen.setdefault("shots", {})[name] = pixel_variety(png)


def press(driver, css, done):
    """Click the button `css` and wait until `done(driver)`. A click headless Chromium drops
    (the page is as it was after 10 s) is made once more."""
    before = driver.current_url
    driver.find_element(By.CSS_SELECTOR, css).click()
    try:
        WebDriverWait(driver, 10, poll_frequency=0.2).until(done)
    except Exception:
        if driver.current_url != before:
            raise
        print("a click on", css, "was lost; clicking again", file=sys.stderr)
        driver.find_element(By.CSS_SELECTOR, css).click()
        WebDriverWait(driver, 10, poll_frequency=0.2).until(done)
