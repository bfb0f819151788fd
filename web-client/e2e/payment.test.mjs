// End-to-end: paying for a consultation, as a patient does it, with the real Vizit server in
// its default demo mode (the built-in sandboxes of Bitrix24, YooKassa and the mail capture) and
// Debian's Chromium, on a desktop and a phone viewport. The demo patient books a slot on
// /consultations, presses «Оплатить», gives an e-mail for the receipt, pays on the sandbox's
// YooKassa page, comes back to /pay/return and sees «Оплачено» — the state the server has, not
// the redirect's word — and the receipt e-mail arrives at the mail capture. A declined payment
// says why and can be paid again. Every page state is checked with axe-core and photographed
// (target/e2e-screens/).
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  VIEWPORTS,
  byTestId,
  checkPage,
  chooseDoctor,
  consoleLog,
  launchBrowser,
  openPortalPage,
  remember,
  startVizit,
  until,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 120_000;
/** The sandbox (YooKassa's page, the mail capture) on a fixed port: the namespace is ours. */
const SANDBOX = '127.0.0.1:18190';


/** The demo patient books a free slot (the first, or the last: two weeks ahead) of a seeded
 * Bitrix24 doctor; returns its row. */
async function bookAsDemoPatient(page, base, which = 'first') {
  await page.goto(`${base}/consultations`);
  await byTestId(page, 'demo-login').click();
  await byTestId(page, 'booking-section').waitFor({ state: 'visible' });
  await chooseDoctor(page, { name: 'Иванова Анна Петровна' });
  await byTestId(page, 'book-slot').first().waitFor({ state: 'visible', timeout: 30_000 });
  // The last: on the strip's last day with free time (two weeks ahead).
  if (which === 'last') await page.locator('[data-testid="day"]:not([disabled])').last().click();
  await byTestId(page, 'book-slot')[which]().click();
  await byTestId(page, 'book-confirm').click();
  const row = page.locator('[data-testid="consultation"][data-status="booked"]').first();
  await row.waitFor({ state: 'visible' });
  return { row, id: await row.getAttribute('data-consultation-id') };
}

async function mails(to) {
  const res = await fetch(`http://${SANDBOX}/sandbox/mail.json`);
  assert.equal(res.status, 200);
  return (await res.json()).filter((m) => m.to.includes(to));
}

describe('paying for a consultation', { timeout: TEST_TIMEOUT * 3 }, () => {
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
      `the patient pays on the payment page and comes back to «Оплачено» (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const page = await openPortalPage(browser, `patient-${kind}`, kind);
        const email = `patient-${kind}@example.ru`;
        const { row, id } = await bookAsDemoPatient(page, server.base);
        const pay = row.locator('[data-testid="pay-consultation"]');
        assert.match(await pay.innerText(), /^Оплатить 1\s500\s₽$/);

        // The demo patient has no e-mail on file: the receipt needs one (54-FZ).
        await pay.click();
        const form = row.locator('[data-testid="pay-form"]');
        await form.waitFor({ state: 'visible' });
        assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'pay-email');
        await row.locator('[data-testid="pay-email"]').fill('not an address');
        await row.locator('[data-testid="pay-submit"]').click();
        await until('the e-mail error', async () => (await row.locator('[data-testid="row-error"]').innerText()).includes('e-mail'));
        await row.locator('[data-testid="pay-email"]').fill(email);
        await checkPage(page, `pay-1-email-${kind}`);
        await row.locator('[data-testid="pay-submit"]').click();

        // YooKassa's page (the sandbox's), then back.
        await page.waitForURL(/\/yookassa\/checkout\//, { timeout: 30_000 });
        assert.match(await byTestId(page, 'amount').innerText(), /1\s500,00\s₽/);
        await checkPage(page, `pay-2-yookassa-${kind}`);
        const paidAt = Date.now();
        await byTestId(page, 'pay').click();
        await page.waitForURL(new RegExp(`/pay/return\\?consultation=${id}$`), { timeout: 30_000 });
        const state = byTestId(page, 'pay-result-state');
        await page.locator('[data-testid="pay-result-state"][data-state="paid"]').waitFor({ timeout: 30_000 });
        remember(consoleLog, `«Оплачено» shown ${Date.now() - paidAt} ms after «Оплатить» (${kind})`, 300);
        assert.match(await state.innerText(), /^Оплачено/);
        const paidRow = page.locator(`[data-testid="consultation"][data-consultation-id="${id}"]`);
        await until('the row shows it paid', async () => (await paidRow.getAttribute('data-status')) === 'paid');
        assert.equal(await paidRow.locator('[data-testid="pay-consultation"]').count(), 0);
        await checkPage(page, `pay-3-paid-${kind}`);

        // The receipt e-mail, through SMTP, in the mail capture.
        // (The payment's notification arrives there too, first; the receipt is its own message.)
        const mail = await until(
          'the receipt e-mail',
          async () => (await mails(email)).find((m) => m.subject.startsWith('Чек об оплате')),
          30_000,
          200,
        );
        remember(consoleLog, `receipt e-mail ${Date.now() - paidAt} ms after «Оплатить» (${kind})`, 300);
        assert.match(mail.subject, /^Чек об оплате консультации/);
        for (const field of ['ФН: ', 'ФД: ', 'ФП: ', 'Итого: 1\u00a0500,00\u00a0₽']) assert.ok(mail.text.includes(field), field);
        await page.context().close();
      }),
    );
  }

  test(
    'a paid consultation cancelled in time shows its refund',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const page = await openPortalPage(browser, 'patient-refund', 'desktop');
      // Two weeks ahead: well within the clinic's notice (24 h), so the patient is refunded.
      const { row, id } = await bookAsDemoPatient(page, server.base, 'last');
      await row.locator('[data-testid="pay-consultation"]').click();
      await row.locator('[data-testid="pay-email"]').fill('refund@example.ru');
      await row.locator('[data-testid="pay-submit"]').click();
      await page.waitForURL(/\/yookassa\/checkout\//, { timeout: 30_000 });
      await byTestId(page, 'pay').click();
      await page.locator('[data-testid="pay-result-state"][data-state="paid"]').waitFor({ timeout: 30_000 });
      const paid = page.locator(`[data-testid="consultation"][data-consultation-id="${id}"]`);
      await paid.locator('[data-testid="cancel-consultation"]').click();
      // The form says what happens to the money, by the clinic's rule (24 h ahead: refunded).
      assert.match(await paid.locator('[data-testid="cancel-panel"]').innerText(), /Деньги вернутся полностью: до /);
      await paid.locator('[data-testid="cancel-reason"]').fill('Планы изменились');
      await paid.locator('[data-testid="cancel-confirm"]').click();
      const refund = paid.locator('[data-testid="refund-state"]');
      // The page follows the refund by itself (no «Обновить»): it is created just after the
      // cancellation and settles a moment later.
      // What the row said last, for the message if it never says «возвращены».
      let seen = null;
      await until(
        () => `the refund shown as done (the row last showed ${JSON.stringify(seen)})`,
        async () => {
          const text = (await refund.count()) > 0 ? await refund.innerText() : '';
          seen = { status: await paid.getAttribute('data-status').catch(() => null), refund: text };
          return /^Деньги возвращены: 1\s500\s₽\.$/.test(text);
        },
        60_000,
        500,
      );
      assert.ok(await byTestId(page, 'pay-result').isHidden(), 'no stale «Оплачено» once cancelled');
      await checkPage(page, 'pay-5-refunded-desktop');
      const receipt = await until('the refund receipt e-mail', async () =>
        (await mails('refund@example.ru')).find((m) => m.subject.startsWith('Чек возврата')),
        30_000,
        200,
      );
      assert.ok(receipt.text.includes('Возврат прихода'));
      await page.context().close();
    }),
  );

  test(
    'a declined payment says why and can be paid again',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const page = await openPortalPage(browser, 'patient-declined', 'desktop');
      const { row, id } = await bookAsDemoPatient(page, server.base);
      await row.locator('[data-testid="pay-consultation"]').click();
      await row.locator('[data-testid="pay-email"]').fill('declined@example.ru');
      await row.locator('[data-testid="pay-submit"]').click();
      await page.waitForURL(/\/yookassa\/checkout\//, { timeout: 30_000 });
      await byTestId(page, 'decline').click();
      await page.waitForURL(new RegExp(`/pay/return\\?consultation=${id}$`), { timeout: 30_000 });
      await page.locator('[data-testid="pay-result-state"][data-state="declined"]').waitFor({ timeout: 30_000 });
      assert.match(await byTestId(page, 'pay-result-state').innerText(), /недостаточно средств/);
      const again = byTestId(page, 'pay-again');
      assert.ok(await again.isVisible());
      await checkPage(page, 'pay-4-declined-desktop');
      await again.click();
      await page.waitForURL(/\/yookassa\/checkout\//, { timeout: 30_000 });
      await byTestId(page, 'pay').click();
      await page.locator('[data-testid="pay-result-state"][data-state="paid"]').waitFor({ timeout: 30_000 });
      await page.context().close();
    }),
  );
});
