// End-to-end: the clinic admin's console in Debian's Chromium against the real server in demo
// mode (its sandboxes of Bitrix24 and YooKassa): a schedule conflict made in Bitrix24 shows up,
// the admin refunds part of a payment (the page refuses more than is left), moves a consultation
// to another day with the slot picker, and reads both in the audit log, filtered by consultation
// and by family of actions. The page is checked with axe-core and photographed at 1280 and 360 px
// (target/e2e-screens/admin-*.png).
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CLINIC_ADMIN,
  CLINIC_PASSWORD,
  clinicToken,
  VIEWPORTS,
  api,
  byTestId,
  checkPage,
  chooseDoctor,
  createClinic,
  launchBrowser,
  openPortalPage,
  staffLogin,
  startVizit,
  until,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 180_000;
/** The sandbox on a port of its own (payments 18190 … ESIA 18193, the journey 18194). */
const SANDBOX = '127.0.0.1:18195';


const row = (page, id) => page.locator(`[data-testid="consultation"][data-consultation-id="${id}"]`);

/** The demo patient books a free slot of the seeded Bitrix24 doctor: the first, or the first of the
 * strip's last day with free time. Resolves with the new consultation's id. */
async function book(page, which) {
  await chooseDoctor(page, { name: 'Иванова Анна Петровна' });
  await byTestId(page, 'book-slot').first().waitFor({ state: 'visible', timeout: 30_000 });
  if (which === 'last') await page.locator('[data-testid="day"]:not([disabled])').last().click();
  await byTestId(page, 'book-slot').first().click();
  await byTestId(page, 'book-confirm').click();
  await byTestId(page, 'booking-pay').waitFor({ state: 'visible', timeout: 15_000 });
  return byTestId(page, 'booking-pay').getAttribute('data-consultation-id');
}

describe("The clinic admin's console: conflicts, refunds, moving, the audit log", { timeout: TEST_TIMEOUT * 2 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startVizit({ VIZIT_SANDBOX__LISTEN: SANDBOX });
    await createClinic(server.env);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test(
    'the admin sees a schedule conflict, refunds part of a payment, moves a consultation and finds both in the log',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const base = server.base;
      const adminToken = await clinicToken(base);

      // A patient pays for one consultation (two weeks ahead) and books another (soon, unpaid).
      const patient = await openPortalPage(browser, 'patient', 'desktop');
      await patient.goto(`${base}/consultations`);
      await byTestId(patient, 'demo-login').click();
      await byTestId(patient, 'booking-section').waitFor({ state: 'visible' });
      const paidId = await book(patient, 'last');
      await byTestId(patient, 'paystep-pay').click();
      await row(patient, paidId).locator('[data-testid="pay-email"]').fill('console@example.ru');
      await row(patient, paidId).locator('[data-testid="pay-submit"]').click();
      await patient.waitForURL(/\/yookassa\/checkout\//, { timeout: 30_000 });
      await byTestId(patient, 'pay').click();
      await patient.locator('[data-testid="pay-result-state"][data-state="paid"]').waitFor({ timeout: 30_000 });
      await patient.goto(`${base}/consultations`);
      const movedId = await book(patient, 'first');
      await patient.context().close();

      // A receptionist moves the second booking in Bitrix24 by a day: Vizit flags it at its sync.
      const moved = await api(base, 'GET', `/consultations/${movedId}`, { token: adminToken, status: 200 });
      const from = Date.parse(moved.startsAt) / 1000;
      const booking = await until(
        'the booking in Bitrix24',
        async () => {
          const state = await (await fetch(`http://${SANDBOX}/sandbox/bitrix24`)).json();
          return state.bookings.find((b) => b.datePeriod.from.timestamp === from);
        },
        30_000,
        250,
      );
      const zone = booking.datePeriod.from.timezone;
      const length = booking.datePeriod.to.timestamp - from;
      // To the first of these times the doctor has free in Bitrix24 (409: taken there).
      let put = null;
      for (const shift of [86_400, 2 * 86_400, 7 * 86_400, 3_600, 7_200, 10_800]) {
        put = await fetch(`http://${SANDBOX}/sandbox/bitrix24/bookings/${booking.id}/period`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            from: { timestamp: from + shift, timezone: zone },
            to: { timestamp: from + shift + length, timezone: zone },
          }),
        });
        if (put.status !== 409) break;
      }
      assert.equal(put.status, 204);
      const report = await api(base, 'POST', '/admin/integrations/bitrix24/sync', { token: adminToken, status: 200 });
      assert.equal(report.conflictsFlagged, 1, JSON.stringify(report));

      // The admin's page.
      const admin = await openPortalPage(browser, 'admin', 'desktop');
      await staffLogin(admin, base, CLINIC_ADMIN.email, CLINIC_PASSWORD);
      const conflict = admin.locator(`[data-testid="conflict-consultation"][data-consultation-id="${movedId}"]`);
      await conflict.waitFor({ state: 'visible', timeout: 15_000 });
      assert.equal(await admin.locator('[data-testid="conflict-consultation"]').count(), 1);
      await row(admin, movedId).locator('[data-testid="slot-conflict"]').waitFor({ state: 'visible' });

      // Refund 500 ₽ of the 1 500 ₽ paid.
      const paidRow = row(admin, paidId);
      await paidRow.locator('[data-testid="refund"]').click();
      const left = paidRow.locator('[data-testid="refund-left"]');
      await left.waitFor({ state: 'visible', timeout: 15_000 });
      assert.match(await left.innerText(), /можно вернуть ещё 1\s500\s₽/);
      await paidRow.locator('[data-testid="refund-amount"]').fill('2000');
      await paidRow.locator('[data-testid="refund-reason"]').fill('Консультация прошла короче');
      await paidRow.locator('[data-testid="refund-submit"]').click();
      assert.match(await paidRow.locator('[data-testid="refund-error"]').innerText(), /от 0,01 до 1500,00/);
      await paidRow.locator('[data-testid="refund-amount"]').fill('500');
      // The page's own dialog asks first; «Не сейчас» returns nothing.
      const ask = admin.locator('[data-testid="ask"]');
      await paidRow.locator('[data-testid="refund-submit"]').click();
      await ask.waitFor({ state: 'visible' });
      assert.match(await ask.innerText(), /Вернуть пациенту 500\s₽\?[\s\S]*500\s₽ из 1\s500\s₽/);
      assert.equal(await admin.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'ask-no');
      assert.equal(await admin.getByRole('dialog', { name: /^Вернуть пациенту 500\s₽\?$/ }).count(), 1, 'the dialog is named by its question');
      await checkPage(admin, 'admin-refund-confirm-desktop');
      await ask.locator('[data-testid="ask-no"]').click();
      await ask.waitFor({ state: 'hidden' });
      assert.equal(await admin.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'refund-submit');
      const untouched = await api(base, 'GET', `/consultations/${paidId}/payments`, { token: adminToken, status: 200 });
      assert.deepEqual(untouched.find((p) => p.status === 'succeeded').refunds, []);
      await paidRow.locator('[data-testid="refund-submit"]').click();
      await ask.locator('[data-testid="ask-yes"]').click();
      await paidRow.locator('[data-testid="refund-done"]').waitFor({ state: 'visible', timeout: 30_000 });
      assert.equal(await admin.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'refund-done');
      assert.match(await paidRow.locator('[data-testid="refund-item"]').first().innerText(), /^500\s₽/);
      const payments = await api(base, 'GET', `/consultations/${paidId}/payments`, { token: adminToken, status: 200 });
      const refunds = payments.find((p) => p.status === 'succeeded').refunds;
      assert.deepEqual(refunds.map((r) => r.amountKopecks), [50000]);

      // Move the conflicting one to the strip's last day with free time.
      const movedRow = row(admin, movedId);
      await movedRow.locator('[data-testid="reschedule"]').click();
      const panel = movedRow.locator('[data-testid="reschedule-panel"]');
      await panel.locator('[data-testid="book-slot"]').first().waitFor({ state: 'visible', timeout: 15_000 });
      await panel.locator('[data-testid="day"]:not([disabled])').last().click();
      const target = panel.locator('[data-testid="slot"]').first();
      const targetSlot = await target.getAttribute('data-slot-id');
      await target.locator('[data-testid="book-slot"]').click();
      assert.match(await panel.locator('[data-testid="reschedule-to"]').innerText(), /^Новое время: /);
      await checkPage(admin, 'admin-reschedule-desktop');
      await panel.locator('[data-testid="reschedule-confirm"]').click();
      await until('the list says it moved', async () => (await byTestId(admin, 'list-status').innerText()) === 'Консультация перенесена.');
      // The focus stays on the row, at its «Перенести».
      assert.equal(await admin.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'reschedule');
      const after = await api(base, 'GET', `/consultations/${movedId}`, { token: adminToken, status: 200 });
      assert.equal(after.slotId, targetSlot);
      assert.notEqual(after.startsAt, moved.startsAt);
      // The patient is told (by e-mail: the address given for the receipt), without medical words.
      let subjects = [];
      const told = await until(
        () => `the patient told of the move (their mail: ${JSON.stringify(subjects)})`,
        async () => {
          const all = (await (await fetch(`http://${SANDBOX}/sandbox/mail.json`)).json()).filter((m) => m.to.includes('console@example.ru'));
          subjects = all.map((m) => m.subject);
          return all.find((m) => m.subject.startsWith('Консультация перенесена'));
        },
        // Told 30 s after the move settles.
        90_000,
        250,
      );
      assert.match(told.text, /перенесена на /);
      // Still unpaid: the message asks to pay.
      assert.match(told.text, /Оплатите её до /);

      // The audit log: the moved consultation's entries, then every refund action.
      await row(admin, movedId).locator('[data-testid="show-audit"]').click();
      assert.equal(await byTestId(admin, 'audit-object').inputValue(), movedId);
      await until('the consultation\'s log shows the move', async () =>
        (await admin.locator('[data-testid="audit-entry"][data-action="consultation.reschedule"]').count()) === 1,
      );
      await byTestId(admin, 'audit-reset').click();
      await byTestId(admin, 'audit-action').selectOption('refund.*');
      await until('only refund actions', async () => {
        const actions = await admin.locator('[data-testid="audit-entry"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-action')));
        return actions.length > 0 && actions.every((a) => a.startsWith('refund.'));
      });
      await checkPage(admin, 'admin-console-desktop');
      await admin.setViewportSize({ width: 360, height: 800 });
      await checkPage(admin, 'admin-console-360');
      await admin.context().close();
    }),
  );

  for (const kind of ['desktop', 'phone']) {
    test(
      `the API's own docs page loads without a console error (${kind})`,
      { timeout: TEST_TIMEOUT },
      withDiagnostics(async () => {
        const context = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: false });
        const page = await context.newPage();
        const errors = [];
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text());
        });
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(`${server.base}/api/v1/docs`);
        await page.locator('details.op').first().waitFor({ state: 'visible', timeout: 15_000 });
        assert.ok((await page.locator('details.op').count()) > 50, 'the operations are listed');
        // Under its own security policy (no bypass): nothing it loads is blocked.
        assert.deepEqual(errors, []);
        await context.close();
        // axe needs its script injected: a second look with the policy bypassed.
        const checked = await browser.newContext({ ...VIEWPORTS[kind], bypassCSP: true });
        const again = await checked.newPage();
        await again.goto(`${server.base}/api/v1/docs`);
        await again.locator('details.op').first().waitFor({ state: 'visible', timeout: 15_000 });
        await checkPage(again, `api-docs-${kind === 'phone' ? 360 : 1280}`);
        await checked.close();
      }),
    );
  }
});
