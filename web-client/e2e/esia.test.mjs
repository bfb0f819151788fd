// «Войти через Госуслуги» as a new user of the demo meets it: `vizit serve` in its default demo
// mode (the built-in ESIA stand, which checks every request's real GOST signature), Debian's
// Chromium, a desktop and a phone viewport. The patient clicks the button, picks a test person
// on the stand's page, gives the three consents, lands signed in, sees «Мои данные» and books a
// consultation; signing out ends the ESIA session too, and signing in again skips the consents.
// A person who refuses on the stand gets a page in Russian with a way back. Every page is checked
// with axe-core and photographed into target/e2e-screens.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { VIEWPORTS, byTestId, checkPage, chooseDoctor, launchBrowser, startVizit, withDiagnostics } from './harness.mjs';

const TEST_TIMEOUT = 120_000;
/** The sandbox on a port of its own (payments 18190, messengers 18191, documents 18192). */
const SANDBOX = '127.0.0.1:18193';
/** A test person per viewport: each registers anew. */
const PERSON = { desktop: { oid: '1000300001', name: 'Иванова', snils: '112-233-445 95' }, phone: { oid: '1000300004', name: 'Кузнецова', snils: '987-654-321 83' } };

async function esiaState() {
  const res = await fetch(`http://${SANDBOX}/sandbox/esia/state.json`);
  assert.equal(res.status, 200);
  return res.json();
}

describe('sign-in through Gosuslugi in the demo', { timeout: TEST_TIMEOUT * 4 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startVizit({ VIZIT_SANDBOX__LISTEN: SANDBOX });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  for (const kind of Object.keys(VIEWPORTS)) {
    test(
      `a new patient registers through the stand, sees their data and books (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const person = PERSON[kind];
        const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true, locale: 'ru-RU' });
        const page = await context.newPage();
        await page.goto(`${server.base}/consultations`);
        const button = byTestId(page, 'esia-login');
        await button.waitFor({ state: 'visible' });
        await checkPage(page, `esia-login-${kind}`);

        await button.click();
        await page.waitForURL((u) => u.href.startsWith(`http://${SANDBOX}/esia/aas/oauth2/v2/ac`));
        await page.getByRole('note').waitFor();
        assert.match(await page.getByRole('note').textContent(), /Тестовый стенд/);
        await checkPage(page, `esia-stand-${kind}`);
        await page.locator(`[data-testid="esia-person"][data-oid="${person.oid}"]`).click();

        // A new person: the consents, each its own checkbox.
        await page.waitForURL((u) => u.pathname === '/login/esia/consents');
        await byTestId(page, 'consents-form').waitFor();
        assert.match(await byTestId(page, 'esia-data').textContent(), new RegExp(person.name));
        await checkPage(page, `esia-consents-${kind}`);
        await byTestId(page, 'consent-personal-data').check();
        await byTestId(page, 'consent-health-data').check();
        await byTestId(page, 'consent-offer').check();
        await byTestId(page, 'consents-accept').click();

        // Signed in: the cabinet with «Мои данные».
        await page.waitForURL((u) => u.pathname === '/consultations');
        await byTestId(page, 'who').waitFor({ state: 'visible' });
        assert.match(await byTestId(page, 'who-name').textContent(), new RegExp(person.name));
        const mine = byTestId(page, 'mydata-section');
        await mine.waitFor({ state: 'visible' });
        const data = await byTestId(page, 'mydata').textContent();
        assert.match(data, new RegExp(person.snils));
        assert.match(data, /подтверждённая/);
        assert.equal(await byTestId(page, 'mydata-consents').locator('li').count(), 3);
        // The session is an HttpOnly cookie: the page's script cannot read it.
        assert.equal(await page.evaluate(() => document.cookie.includes('vizit_session')), false);

        // Booking works for this patient as for any other.
        await byTestId(page, 'booking-section').waitFor({ state: 'visible' });
        await chooseDoctor(page);
        const first = page.locator('[data-testid="slot"]').first();
        await first.waitFor({ state: 'visible', timeout: 30_000 });
        await first.locator('[data-testid="book-slot"]').click();
        await byTestId(page, 'book-confirm').click();
        await page.locator('[data-testid="consultations"] li').first().waitFor({ state: 'visible', timeout: 30_000 });
        await checkPage(page, `esia-cabinet-${kind}`);

        // Signing out ends the ESIA session too, and comes back to the login view.
        const logouts = (await esiaState()).logouts;
        await byTestId(page, 'logout').click();
        await page.waitForURL((u) => u.href.startsWith(server.base) && u.pathname === '/consultations');
        await byTestId(page, 'esia-login').waitFor({ state: 'visible' });
        assert.equal((await esiaState()).logouts, logouts + 1);

        // Again: known, so straight in, the booking still there.
        await byTestId(page, 'esia-login').click();
        await page.locator(`[data-testid="esia-person"][data-oid="${person.oid}"]`).click();
        await page.waitForURL((u) => u.pathname === '/consultations');
        await byTestId(page, 'who').waitFor({ state: 'visible' });
        await page.locator('[data-testid="consultations"] li').first().waitFor({ state: 'visible' });
        await context.close();
      }),
    );

    test(
      `a person who refuses on the stand gets a clear page with a way back (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true, locale: 'ru-RU' });
        const page = await context.newPage();
        await page.goto(`${server.base}/login/esia`);
        await byTestId(page, 'esia-refuse').click();
        const failed = byTestId(page, 'login-failed');
        await failed.waitFor();
        assert.equal(await failed.getAttribute('data-reason'), 'refused');
        assert.match(await page.locator('h1').textContent(), /Вход отменён/);
        await checkPage(page, `esia-refused-${kind}`);
        // No session came of it.
        await page.getByRole('link', { name: 'На главную' }).click();
        await byTestId(page, 'esia-login').waitFor({ state: 'visible' });
        // An unconfirmed account is turned away (the clinic's default).
        await byTestId(page, 'esia-login').click();
        await page.locator('[data-testid="esia-person"][data-oid="1000300003"]').click();
        await byTestId(page, 'login-failed').waitFor();
        assert.equal(await byTestId(page, 'login-failed').getAttribute('data-reason'), 'unconfirmed');
        await checkPage(page, `esia-unconfirmed-${kind}`);
        await context.close();
      }),
    );
  }
});
