// One participant in Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi, for
// firefox.test.mjs: run in the Firefox network namespace (nsenter), since puppeteer reaches the
// browser on that namespace's loopback. Opens the call page at argv[2], joins, and reports on
// stdout, one JSON object a line: `connected`, then `video` (the other party's picture: its
// width and how far it played in 3 s). Hangs up and exits on a `hangup` line on stdin; on any
// failure prints `error` and exits 1.

import { createInterface } from 'node:readline';
import puppeteer from 'puppeteer-core';

const say = (event) => console.log(JSON.stringify(event));
const url = process.argv[2];
let browser;
try {
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: {
      // Fake camera and microphone, no permission prompt, sound may autoplay; the page is served
      // over plain HTTP on a non-loopback address (the test's second namespace).
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      'media.devices.insecure.enabled': true,
      'media.getusermedia.insecure.enabled': true,
    },
  });
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`[firefox] ${m.type()}: ${m.text()}`));
  await page.goto(url);
  await page.waitForSelector('[data-testid="join"]:not([disabled])', { timeout: 30_000 });
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="connection-state"][data-state="connected"]', { timeout: 45_000 });
  say({ event: 'connected' });
  // Headless Firefox counts no decoded frames in its stats: the picture's size and an advancing
  // playback position say that video plays.
  const remote = () =>
    page.evaluate(() => {
      const v = document.querySelector('[data-testid="remote-video"]');
      return { width: v.videoWidth, time: v.currentTime };
    });
  const deadline = Date.now() + 30_000;
  let first = await remote();
  while (first.width === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    first = await remote();
  }
  await new Promise((r) => setTimeout(r, 3_000));
  const later = await remote();
  say({ event: 'video', width: later.width, advanced: later.time - first.time });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === 'hangup') break;
  }
  await page.click('[data-testid="hangup"]');
  // «Завершить звонок?» — yes.
  await page.click('[data-testid="hangup-yes"]');
  await page.waitForSelector('[data-testid="connection-state"][data-state="ended"]', { timeout: 10_000 });
  say({ event: 'ended' });
  await browser.close();
} catch (e) {
  say({ event: 'error', message: e instanceof Error ? e.message : String(e) });
  await browser?.close().catch(() => {});
  process.exit(1);
}
