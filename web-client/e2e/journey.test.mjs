// End-to-end: the whole story of one consultation, as the people in it live it, in Debian's
// Chromium against the real server in demo mode (its sandboxes of YooKassa and the mail).
//
// A new patient on a phone books a doctor from the cards (the time at their own clock),
// confirms, pays on the payment step, joins the call; the doctor joins from a desktop; both
// consent to the recording, talk and hang up. The doctor writes the conclusion on their page;
// the clinic admin finds the consultation and its recordings by the patient's name; the patient
// (the clinic lets patients have their recordings here) downloads one. Each page is checked with
// axe-core and photographed at its size (target/e2e-screens/journey-*.png).
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  CLINIC_ADMIN,
  CLINIC_DOCTOR,
  CLINIC_PASSWORD,
  clinicToken,
  api,
  byTestId,
  checkPage,
  chooseDoctor,
  consoleLog,
  createClinic,
  hangUp,
  joinBoth,
  launchBrowser,
  openPortalPage,
  staffLogin,
  startVizit,
  until,
  waitState,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 240_000;
/** The sandbox on a port of its own (payments 18190, messengers 18191, documents 18192, ESIA 18193). */
const SANDBOX = '127.0.0.1:18194';
const PATIENT = 'Пациент (демо)';
const CONCLUSION = 'ОРВИ, лёгкое течение. Обильное питьё, контроль температуры, повторно через 5 дней.';
/** How long the two talk with the recording on. */
const TALK_MS = 4_000;
/** The call is made in the cabinet's own tab. */
const MEDIA = { permissions: ['camera', 'microphone'] };


const row = (page, id) => page.locator(`[data-testid="consultation"][data-consultation-id="${id}"]`);

describe('One consultation from booking on a phone to the recording downloaded', { timeout: TEST_TIMEOUT * 2 }, () => {
  let server;
  let browser;
  let doctorId;
  let slotId;
  let slotStart;

  before(async () => {
    server = await startVizit({
      VIZIT_SANDBOX__LISTEN: SANDBOX,
      VIZIT_RECORDINGS__PATIENTS_MAY_DOWNLOAD: 'true',
    });
    doctorId = await createClinic(server.env);
    browser = await launchBrowser();
    // The clinic publishes a slot that starts in two minutes (its call is open already).
    const token = await clinicToken(server.base);
    const start = Math.ceil((Date.now() + 2 * 60_000) / 60_000) * 60_000;
    slotStart = start;
    ({ id: slotId } = await api(server.base, 'POST', `/doctors/${doctorId}/slots`, {
      token,
      body: { startsAt: new Date(start).toISOString(), endsAt: new Date(start + 30 * 60_000).toISOString(), priceKopecks: 120000 },
      status: 201,
    }));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test(
    'book and pay on a phone, call, conclusion, found by the admin, recording downloaded by the patient',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const base = server.base;

      // ---- the patient, on a phone: doctor, day, time, confirmation, payment step ----
      const patient = await openPortalPage(browser, 'patient', 'phone', MEDIA);
      await patient.goto(`${base}/consultations`);
      await byTestId(patient, 'demo-login').click();
      await byTestId(patient, 'booking-section').waitFor({ state: 'visible' });
      const card = patient.locator(`[data-testid="doctor"][data-doctor-id="${doctorId}"]`);
      await card.waitFor({ state: 'visible', timeout: 15_000 });
      assert.match(await card.innerText(), new RegExp(CLINIC_DOCTOR.specialty));
      // The picture is a placeholder with the initials until the clinic has photos.
      assert.equal(await card.locator('.avatar').innerText(), 'ДС');
      await checkPage(patient, 'journey-1-doctors-phone');
      await chooseDoctor(patient, { id: doctorId });
      assert.equal(await card.getAttribute('aria-pressed'), 'true');
      const slot = patient.locator(`[data-testid="slot"][data-slot-id="${slotId}"] [data-testid="book-slot"]`);
      await slot.waitFor({ state: 'visible', timeout: 15_000 });
      await slot.click();
      await byTestId(patient, 'booking-confirm').waitFor({ state: 'visible' });
      assert.match(await byTestId(patient, 'confirm-price').innerText(), /1\s200\s₽/);
      // The rules name the clinic's refund notice.
      assert.match(await byTestId(patient, 'rule-cancel').innerText(), /не позже чем за 24 ч до начала/);
      await byTestId(patient, 'book-confirm').click();

      // The payment step: what was booked, by when to pay, «Оплатить», with the focus on it.
      const step = byTestId(patient, 'booking-pay');
      await step.waitFor({ state: 'visible', timeout: 15_000 });
      assert.match(await byTestId(patient, 'paystep-pay').innerText(), /^Оплатить 1\s200\s₽$/);
      assert.match(await byTestId(patient, 'paystep-doctor').innerText(), new RegExp(CLINIC_DOCTOR.name));
      assert.notEqual((await byTestId(patient, 'paystep-by').innerText()).trim(), '');
      assert.equal(await patient.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'paystep-pay');
      const consultationId = await step.getAttribute('data-consultation-id');
      assert.match(consultationId ?? '', /^[0-9a-f-]{36}$/);
      await checkPage(patient, 'journey-2-paystep-phone');
      await byTestId(patient, 'paystep-pay').click();
      // The demo patient has no e-mail on file: the receipt asks for one, in the row.
      const email = row(patient, consultationId).locator('[data-testid="pay-email"]');
      await email.waitFor({ state: 'visible', timeout: 15_000 });
      assert.ok(await step.isHidden(), 'the step gives way to the e-mail form');
      await email.fill('journey@example.ru');
      await row(patient, consultationId).locator('[data-testid="pay-submit"]').click();
      await patient.waitForURL(/\/yookassa\/checkout\//, { timeout: 30_000 });
      await byTestId(patient, 'pay').click();
      await patient.locator('[data-testid="pay-result-state"][data-state="paid"]').waitFor({ timeout: 30_000 });
      await until('the row says paid', async () => (await row(patient, consultationId).getAttribute('data-status')) === 'paid');

      // ---- the call: the patient from the row, the doctor from their page ----
      await row(patient, consultationId).locator('[data-testid="join-consultation"]').click();
      await patient.waitForURL(/\/call/, { timeout: 15_000 });
      await until('the patient\'s Join enabled', () => byTestId(patient, 'join').isEnabled(), 20_000);

      const doctor = await openPortalPage(browser, 'doctor', 'desktop', MEDIA);
      await staffLogin(doctor, base, CLINIC_DOCTOR.email, CLINIC_PASSWORD);
      const doctorRow = row(doctor, consultationId);
      await doctorRow.waitFor({ state: 'visible', timeout: 15_000 });
      assert.match(await doctorRow.innerText(), new RegExp(PATIENT.replace(/[()]/g, '\\$&')));
      await doctorRow.locator('[data-testid="join-consultation"]').click();
      await doctor.waitForURL(/\/call/, { timeout: 15_000 });
      await until('the doctor\'s Join enabled', () => byTestId(doctor, 'join').isEnabled(), 20_000);

      await joinBoth(patient, doctor);
      for (const page of [patient, doctor]) {
        await byTestId(page, 'recording-consent').waitFor({ state: 'visible', timeout: 15_000 });
        await byTestId(page, 'recording-consent').click();
      }
      for (const page of [patient, doctor]) await byTestId(page, 'recording-indicator').waitFor({ state: 'visible', timeout: 15_000 });
      await checkPage(patient, 'journey-3-call-phone');
      await new Promise((r) => setTimeout(r, TALK_MS));
      await hangUp(patient);
      await hangUp(doctor);
      await Promise.all([waitState(patient, 'ended'), waitState(doctor, 'ended')]);

      // ---- the doctor writes the conclusion on their page (from the after-call link) ----
      await byTestId(doctor, 'after-call-cabinet').click();
      await doctor.waitForURL(/\/consultations/);
      const conclusion = row(doctor, consultationId).locator('[data-testid="conclusion"]');
      await conclusion.waitFor({ state: 'visible', timeout: 15_000 });
      await conclusion.fill(CONCLUSION);
      await row(doctor, consultationId).locator('[data-testid="complete-consultation"]').click();
      await until('completed on the doctor\'s page', async () => (await row(doctor, consultationId).getAttribute('data-status')) === 'completed');
      await doctor.context().close();

      // ---- the admin finds it by the patient's name, with its recordings ----
      const admin = await openPortalPage(browser, 'admin', 'desktop');
      await staffLogin(admin, base, CLINIC_ADMIN.email, CLINIC_PASSWORD);
      await byTestId(admin, 'filters').waitFor({ state: 'visible', timeout: 15_000 });
      await byTestId(admin, 'search').fill('пациент (ДЕМО');
      await until('the search finds the consultation', async () => {
        const rows = admin.locator('[data-testid="consultation"]');
        return (await rows.count()) === 1 && (await rows.first().getAttribute('data-consultation-id')) === consultationId;
      }, 15_000, 200);
      assert.match(await row(admin, consultationId).innerText(), /Завершена/);
      // And by its day (at the admin's clock); another day has nothing.
      const dayOf = (ms) =>
        admin.evaluate((t) => {
          const d = new Date(t);
          return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
        }, ms);
      await byTestId(admin, 'day-filter').fill(await dayOf(slotStart + 86_400_000));
      await until('another day: nothing', async () => (await admin.locator('[data-testid="consultation"]').count()) === 0, 15_000, 200);
      await byTestId(admin, 'day-filter').fill(await dayOf(slotStart));
      await row(admin, consultationId).waitFor({ state: 'visible', timeout: 15_000 });
      const recordings = admin.locator('[data-testid="recording"]');
      await until('the recordings are stored, followed by the page itself', async () => {
        const n = await recordings.count();
        if (n < 2) return false;
        const states = await admin.locator('[data-testid="recording-status"]').allInnerTexts();
        return states.every((s) => s === 'Сохранена');
      }, 90_000, 500);
      for (const text of await recordings.allInnerTexts()) assert.ok(text.includes(PATIENT), `a recording without the patient's name: ${text}`);
      // The consultation's own recordings, in its row, and one downloaded from there.
      const found = row(admin, consultationId);
      await found.locator('[data-testid="show-recordings"]').click();
      const own = found.locator('[data-testid="recordings-panel"] [data-testid="recording"]');
      await until('the row lists its recordings', async () => (await own.count()) >= 2, 15_000, 200);
      const [byAdmin] = await Promise.all([
        admin.waitForEvent('download', { timeout: 30_000 }),
        own.first().locator('[data-testid="recording-download"]').click(),
      ]);
      assert.ok((await stat(await byAdmin.path())).size > 1000, 'the admin downloaded a recording');
      await checkPage(admin, 'journey-4-admin-desktop');
      await admin.context().close();

      // ---- the patient gets a recording of their consultation ----
      await patient.goto(`${base}/consultations`);
      await byTestId(patient, 'recordings-section').waitFor({ state: 'visible', timeout: 15_000 });
      const mine = patient.locator('[data-testid="recording"]');
      await until('the patient\'s recordings', async () => {
        if ((await mine.count()) > 0) return true;
        await byTestId(patient, 'refresh').click();
        return false;
      }, 30_000, 1_000);
      assert.match(await row(patient, consultationId).locator('[data-testid="conclusion-text"]').innerText(), /ОРВИ/);
      await checkPage(patient, 'journey-5-recordings-phone');
      const [download] = await Promise.all([
        patient.waitForEvent('download', { timeout: 30_000 }),
        mine.first().locator('[data-testid="recording-download"]').click(),
      ]);
      const file = await download.path();
      assert.ok((await stat(file)).size > 1000, 'the recording downloaded');
      await patient.context().close();

      // Nothing of the patient's or the conclusion in any console.
      const leaks = consoleLog.filter((l) => l.includes(CONCLUSION) || l.includes('journey@example.ru'));
      assert.deepEqual(leaks, []);
    }),
  );
});
