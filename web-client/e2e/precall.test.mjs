// End-to-end: the pre-call check on its own page (/check) and on the call page. The camera
// preview and the microphone meter work; the speakers' test sound plays; the test call through
// this server connects and measures bitrate, loss and round trip, with the verdict «хорошая» on
// loopback and «не удалось подключиться» when the SFU cannot be reached at all; a denied camera
// gets instructions in the words of the browser it happens in. Photographed and checked by
// axe-core on a desktop and a phone.
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  VIEWPORTS,
  byTestId,
  checkPage,
  consoleLog,
  launchBrowser,
  makeToken,
  newRoom,
  nft,
  openCallPage,
  remember,
  startVizit,
  until,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 120_000;
const FIREFOX_UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const IPHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1';

describe('The pre-call check', () => {
  let server;
  let browser;

  before(
    withDiagnostics(async () => {
      server = await startVizit();
      browser = await launchBrowser();
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
  });

  /** /check in a new context (`options`: viewport, user agent, media denied). */
  async function openCheck(label, { deny = false, ...options } = {}) {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'], bypassCSP: true, ...options });
    if (deny) {
      await context.addInitScript(() => {
        MediaDevices.prototype.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
      });
    }
    const page = await context.newPage();
    page.on('console', (m) => remember(consoleLog, `[${label}] ${m.type()}: ${m.text()}`, 300));
    await page.goto(`${server.base}/check`);
    await byTestId(page, 'precall-title').waitFor({ state: 'visible', timeout: 15_000 });
    return page;
  }

  /** Run the connection test; its verdict and the numbers line. */
  async function checkConnection(page, timeout = 60_000) {
    await byTestId(page, 'test-connection').click();
    const result = byTestId(page, 'connection-result');
    const verdict = await until(
      'the connection check to end',
      async () => (await result.getAttribute('data-verdict')) || null,
      timeout,
    );
    return { verdict, text: await byTestId(page, 'connection-verdict').textContent(), numbers: await byTestId(page, 'connection-numbers').textContent() };
  }

  test(
    '/check: preview, test sound, and a test call through the server with its numbers and verdict',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const page = await openCheck('check', VIEWPORTS.desktop);
      assert.equal(await byTestId(page, 'join').isVisible(), false, 'nothing to join here');
      await until('the preview is ready', async () => /Камера и микрофон работают/.test(await byTestId(page, 'precall-status').textContent()), 20_000);
      await until('the camera shows', () => page.evaluate(() => document.querySelector('[data-testid="local-video"]').videoWidth > 0), 10_000);

      await byTestId(page, 'test-speakers').click();
      await until('the test sound played', async () => (await byTestId(page, 'speakers-result').getAttribute('data-state')) === 'played', 10_000);

      const good = await checkConnection(page);
      assert.equal(good.verdict, 'good', `${good.text} ${good.numbers}`);
      assert.match(good.text, /Связь хорошая/);
      const m = /Отправка ([\d,]+) (кбит|Мбит)\/с, приём ([\d,]+) (кбит|Мбит)\/с · потери (\d+) % · задержка (\d+) мс/.exec(good.numbers);
      assert.ok(m, good.numbers);
      const kbps = (v, unit) => Number(v.replace(',', '.')) * (unit === 'Мбит' ? 1000 : 1);
      assert.ok(kbps(m[1], m[2]) > 50 && kbps(m[3], m[4]) > 50, `media went up and came back down: ${good.numbers}`);
      console.log(`# connection check on loopback: ${good.numbers}`);
      await checkPage(page, 'check-desktop');

      // The server out of reach (UDP and TCP to its media ports dropped): said plainly.
      await nft(
        `table inet nosfu {\n chain out {\n type filter hook output priority 0;\n` +
          ` udp dport ${server.mediaPort} drop\n tcp dport ${server.tcpPort} drop\n }\n}\n`,
      );
      try {
        const failed = await checkConnection(page, 90_000);
        assert.equal(failed.verdict, 'failed');
        assert.match(failed.text, /Не удалось подключиться к серверу видеосвязи/);
        assert.equal(failed.numbers, '');
      } finally {
        await nft('delete table inet nosfu\n').catch(() => {});
      }
      await page.context().close();
    }),
  );

  test(
    '/check on a phone, and a denied camera explained in the words of the browser',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const phone = await openCheck('check-phone', VIEWPORTS.phone);
      await until('the preview is ready', async () => /Камера и микрофон работают/.test(await byTestId(phone, 'precall-status').textContent()), 20_000);
      await checkPage(phone, 'check-phone');
      await phone.context().close();

      for (const [ua, words] of [
        [FIREFOX_UA, /В Firefox: нажмите на перечёркнутый значок/],
        [IPHONE_UA, /нажмите «аА» слева в адресной строке/],
      ]) {
        const page = await openCheck('check-denied', { deny: true, userAgent: ua, ...VIEWPORTS.phone });
        await byTestId(page, 'media-warning').waitFor({ state: 'visible', timeout: 10_000 });
        const text = await byTestId(page, 'media-warning').textContent();
        assert.match(text, /Доступ к камере и микрофону запрещён/);
        assert.match(text, words);
        await page.context().close();
      }
    }),
  );

  test(
    'the call page offers the same checks before joining',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const token = await makeToken(server.env, newRoom(), 'Пациент Проверкин', 'patient');
      const page = await openCallPage(browser, server.base, 'call-check', token);
      assert.equal(await byTestId(page, 'precall-title').isVisible(), false);
      const r = await checkConnection(page);
      assert.equal(r.verdict, 'good', `${r.text} ${r.numbers}`);
      // The check took nothing from the call: Join still works with the camera.
      assert.ok(await byTestId(page, 'join').isEnabled());
      assert.ok(await page.evaluate(() => document.querySelector('[data-testid="local-video"]').videoWidth > 0));
      await page.context().close();
    }),
  );
});
