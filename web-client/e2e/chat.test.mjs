// End-to-end: the call's chat (docs/chat.md) in two Chromium pages of a paid consultation. The
// patient writes and the doctor sees it (with the unread count on the chat button); the patient
// sends a photo, which the doctor sees as a picture; a program renamed to .pdf is refused with a
// clear message and reaches nobody; the doctor sends the conclusion as a PDF, which the patient
// downloads whole; after a reload the patient's page shows the whole conversation again, and the
// consultations page lists it afterwards. The chat is photographed open on a desktop and a phone
// and checked by axe-core.
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  VIEWPORTS,
  api,
  byTestId,
  checkPage,
  createClinic,
  joinBoth,
  launchBrowser,
  openCallPage,
  paidConsultation,
  startVizit,
  until,
  waitState,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 150_000;

/** A 1×1 PNG: a real picture, so the doctor's page can show it. */
const PHOTO = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
  'base64',
);
const CONCLUSION = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n' +
    'trailer << /Root 1 0 R >>\n%%EOF\n',
);

/** The texts of the chat's messages on `page`, in order. */
async function messages(page) {
  return byTestId(page, 'chat-list').locator('[data-testid="chat-message"]').allInnerTexts();
}

describe('The call chat', () => {
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

  test(
    'messages and files arrive, a forbidden file is refused, the conversation survives a reload',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const doctorId = await createClinic(server.env);
      const { consultationId, patientSession, doctorSession } = await paidConsultation(server.base, doctorId);
      const joinToken = async (session) =>
        (await api(server.base, 'POST', `/consultations/${consultationId}/join`, { token: session, status: 200 })).token;
      const [patientToken, doctorToken] = [await joinToken(patientSession), await joinToken(doctorSession)];
      const desktop = { ...VIEWPORTS.desktop, bypassCSP: true };
      const patient = await openCallPage(browser, server.base, 'patient-chat', patientToken, { context: desktop });
      const doctor = await openCallPage(browser, server.base, 'doctor-chat', doctorToken, { context: desktop });
      await joinBoth(patient, doctor);

      // The chat button appears once the chat answers (the room is a consultation).
      await byTestId(patient, 'toggle-chat').waitFor({ state: 'visible', timeout: 10_000 });
      await byTestId(doctor, 'toggle-chat').waitFor({ state: 'visible', timeout: 10_000 });
      await byTestId(patient, 'toggle-chat').click();
      assert.equal(await byTestId(patient, 'chat').isVisible(), true);
      assert.equal(await byTestId(patient, 'chat-conclusion').isVisible(), false, 'a patient sends no conclusion');
      await byTestId(patient, 'chat-input').fill('Здравствуйте! Прикладываю фото сыпи.');
      await byTestId(patient, 'chat-input').press('Enter');
      await until('the patient sees the message sent', async () =>
        (await byTestId(patient, 'chat-list').locator('[data-state="sent"]').count()) === 1,
      );

      // The doctor, chat closed, is told there is something new.
      await until('the doctor sees one unread message', async () =>
        (await byTestId(doctor, 'chat-unread').isVisible()) && (await byTestId(doctor, 'chat-unread').textContent()) === '1',
      );
      await byTestId(doctor, 'toggle-chat').click();
      assert.equal(await byTestId(doctor, 'chat-unread').isVisible(), false);
      const first = await messages(doctor);
      assert.equal(first.length, 1);
      assert.match(first[0], /Пациент Записи/);
      assert.match(first[0], /Прикладываю фото сыпи/);

      // A photo: shown to the doctor as a picture.
      await byTestId(patient, 'chat-file').setInputFiles({ name: 'сыпь.png', mimeType: 'image/png', buffer: PHOTO });
      await until('the doctor sees the photo', async () => {
        const img = byTestId(doctor, 'chat-image');
        return (await img.count()) === 1 && (await img.evaluate((el) => el.complete && el.naturalWidth === 1));
      });
      assert.match((await messages(doctor))[1], /сыпь\.png/);

      // A program renamed to .pdf: refused with a reason, reaches nobody.
      await byTestId(patient, 'chat-file').setInputFiles({
        name: 'анализы.pdf',
        mimeType: 'application/pdf',
        buffer: Buffer.from('MZ\x90\x00\x03 this is not a PDF'),
      });
      await byTestId(patient, 'chat-error').waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await byTestId(patient, 'chat-error').textContent(), /фотографии \(JPEG, PNG, WebP, HEIC\) и документы PDF/);
      assert.equal((await messages(patient)).length, 2, 'the refused file is not in the chat');

      // The doctor sends the conclusion; the patient downloads it whole.
      assert.equal(await byTestId(doctor, 'chat-conclusion').isVisible(), true);
      await byTestId(doctor, 'chat-conclusion').check();
      await byTestId(doctor, 'chat-file').setInputFiles({ name: 'Заключение.pdf', mimeType: 'application/pdf', buffer: CONCLUSION });
      await until('the patient sees the conclusion', async () => {
        const all = await messages(patient);
        return all.length === 3 && /Заключение\.pdf/.test(all[2]) && /Заключение/.test(all[2]);
      });
      assert.equal((await messages(doctor)).length, 3, 'the refused file never reached the doctor');
      const [download] = await Promise.all([
        patient.waitForEvent('download'),
        byTestId(patient, 'chat-list').locator('[data-testid="chat-download"]').last().click(),
      ]);
      assert.equal(download.suggestedFilename(), 'Заключение.pdf');
      assert.deepEqual(await readFile(await download.path()), CONCLUSION);

      await checkPage(patient, 'call-chat-desktop');

      // A reload: the conversation is there again, in order.
      await patient.reload();
      await until('Join enabled after the reload', () => byTestId(patient, 'join').isEnabled(), 20_000);
      await byTestId(patient, 'join').click();
      await waitState(patient, 'connected');
      await byTestId(patient, 'toggle-chat').waitFor({ state: 'visible', timeout: 10_000 });
      assert.equal(await byTestId(patient, 'chat-unread').isVisible(), false, 'history is not unread');
      await byTestId(patient, 'toggle-chat').click();
      await until('the history after the reload', async () => (await messages(patient)).length === 3);
      const again = await messages(patient);
      assert.match(again[0], /Прикладываю фото сыпи/);
      assert.match(again[1], /сыпь\.png/);
      assert.match(again[2], /Заключение\.pdf/);

      // On a phone the chat takes the screen; checked as people see it.
      const phone = await openCallPage(browser, server.base, 'doctor-phone', doctorToken, {
        context: { ...VIEWPORTS.phone, bypassCSP: true },
      });
      await byTestId(phone, 'join').click();
      await waitState(phone, 'connected');
      await byTestId(phone, 'toggle-chat').waitFor({ state: 'visible', timeout: 10_000 });
      await byTestId(phone, 'toggle-chat').click();
      await until('the phone shows the history', async () => (await messages(phone)).length === 3);
      await checkPage(phone, 'call-chat-phone');
      await byTestId(phone, 'chat-close').click();
      assert.equal(await byTestId(phone, 'chat').isVisible(), false);

      // Afterwards, on the consultations page: the conversation and the conclusion file.
      const page = await (await browser.newContext({ ...VIEWPORTS.desktop, bypassCSP: true })).newPage();
      await page.goto(`${server.base}/consultations#session=${encodeURIComponent(patientSession)}`);
      const row = page.locator(`[data-testid="consultation"][data-consultation-id="${consultationId}"]`);
      await row.waitFor({ state: 'visible', timeout: 15_000 });
      await row.locator('[data-testid="show-chat"]').click();
      const entries = row.locator('[data-testid="chat-entry"]');
      await until('the consultation page lists the chat', async () => (await entries.count()) === 3);
      assert.match(await entries.nth(0).innerText(), /Прикладываю фото сыпи/);
      assert.match(await entries.nth(2).innerText(), /Заключение/);
      const [saved] = await Promise.all([
        page.waitForEvent('download'),
        entries.nth(2).locator('[data-testid="chat-entry-download"]').click(),
      ]);
      assert.equal(saved.suggestedFilename(), 'Заключение.pdf');
      assert.deepEqual(await readFile(await saved.path()), CONCLUSION);
      await checkPage(page, 'consultation-chat-desktop');
    }),
  );
});
