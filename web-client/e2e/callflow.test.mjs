// End-to-end: the call page's flow around the call, as people go through it. A link that
// cannot work (garbage, a closed consultation) is said plainly — with the way to the cabinet
// — before the browser is asked for the camera; a good link says who meets whom and when;
// on a phone the doctor's picture fills the upright screen and the own tile drags to a corner;
// hang-up asks first («Остаться» keeps the call), and the page after the call says what happens
// next, by role, with the way back to the consultation. Photographed at 360 and 1280 px and
// checked by axe-core.
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CLINIC_DOCTOR,
  api,
  byTestId,
  checkPage,
  consoleLog,
  createClinic,
  hangUp,
  launchBrowser,
  openCallPage,
  paidConsultation,
  remember,
  startVizit,
  until,
  waitState,
  withDiagnostics,
} from './harness.mjs';

const TEST_TIMEOUT = 150_000;
const NARROW = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, bypassCSP: true };
const WIDE = { viewport: { width: 1280, height: 800 }, bypassCSP: true };

/** Counts the page's camera requests (none may come before the link is known to be good). */
function countCameraRequests() {
  window.__cameraRequests = 0;
  const original = MediaDevices.prototype.getUserMedia;
  MediaDevices.prototype.getUserMedia = function (...args) {
    window.__cameraRequests += 1;
    return original.apply(this, args);
  };
}

describe('Around the call: the link checked first, hang-up confirmed, what comes after', () => {
  let server;
  let browser;
  let consultation;

  before(
    withDiagnostics(async () => {
      server = await startVizit();
      browser = await launchBrowser();
      const doctorId = await createClinic(server.env);
      consultation = await paidConsultation(server.base, doctorId);
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
  });

  async function open(label, token, options) {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'], ...options });
    await context.addInitScript(countCameraRequests);
    const page = await context.newPage();
    page.on('console', (m) => remember(consoleLog, `[${label}] ${m.type()}: ${m.text()}`, 300));
    await page.goto(`${server.base}/call#token=${encodeURIComponent(token)}`);
    return page;
  }

  test(
    'a link that cannot work is said before any camera prompt, with the way to the cabinet',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      for (const [name, options] of [
        ['narrow', NARROW],
        ['wide', WIDE],
      ]) {
        const page = await open(`bad-link-${name}`, 'this.is.not-a-token', options);
        await byTestId(page, 'page-message-title').waitFor({ state: 'visible', timeout: 15_000 });
        assert.equal(await byTestId(page, 'page-message-title').textContent(), 'Ссылка на звонок недействительна');
        assert.equal(await byTestId(page, 'to-cabinet').getAttribute('href'), '/consultations');
        assert.equal(await page.evaluate(() => window.__cameraRequests), 0, 'no camera prompt for a bad link');
        await checkPage(page, `call-link-invalid-${name === 'narrow' ? 360 : 1280}`);
        await page.context().close();
      }

    }),
  );

  test(
    'a good link says who meets whom and when; hang-up asks first; after the call, what comes next',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const { consultationId, patientSession, doctorSession } = consultation;
      const join = async (session) =>
        (await api(server.base, 'POST', `/consultations/${consultationId}/join`, { token: session, status: 200 })).token;
      const patient = await openCallPage(browser, server.base, 'flow-patient', await join(patientSession), { context: NARROW });
      const doctor = await openCallPage(browser, server.base, 'flow-doctor', await join(doctorSession), { context: WIDE });

      await byTestId(patient, 'meeting').waitFor({ state: 'visible' });
      assert.match(await byTestId(patient, 'meeting-with').textContent(), /Консультация с врачом: Доктор Смирнова, терапевт/);
      assert.match(await byTestId(patient, 'meeting-when').textContent(), /\d{2}:\d{2}–\d{2}:\d{2}/);
      assert.match(await byTestId(patient, 'meeting-you').textContent(), /как пациент/);
      assert.match(await byTestId(doctor, 'meeting-with').textContent(), /Консультация с пациентом: Пациент Записи/);
      await checkPage(patient, 'call-precall-360');
      await checkPage(doctor, 'call-precall-1280');

      await byTestId(doctor, 'join').click();
      await byTestId(patient, 'join').click();
      await Promise.all([waitState(doctor, 'connected'), waitState(patient, 'connected')]);

      // On the phone: the doctor's picture fills the upright screen, the header is one line,
      // the own tile can be dragged to another corner.
      await until('the patient decodes the doctor', async () => (await patient.evaluate(() => document.querySelector('[data-testid="remote-video"]').videoWidth)) > 0, 20_000);
      const fit = (page) => page.evaluate(() => getComputedStyle(document.querySelector('[data-testid="remote-video"]')).objectFit);
      assert.equal(await fit(patient), 'cover');
      assert.equal(await fit(doctor), 'contain', 'the doctor sees the whole frame');
      const bar = await patient.locator('.bar').boundingBox();
      assert.ok(bar.height < 60, `the header is one line (${bar.height} px)`);
      const tile = byTestId(patient, 'self-tile');
      assert.equal(await tile.getAttribute('data-corner'), 'br');
      const box = await tile.boundingBox();
      await patient.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await patient.mouse.down();
      await patient.mouse.move(30, 120, { steps: 8 });
      await patient.mouse.up();
      assert.equal(await tile.getAttribute('data-corner'), 'tl');
      const moved = await tile.boundingBox();
      assert.ok(moved.x < 60 && moved.y < 200, JSON.stringify(moved));
      // And without a pointer: the arrows, then Enter to the next corner around.
      await tile.focus();
      await patient.keyboard.press('ArrowDown');
      assert.equal(await tile.getAttribute('data-corner'), 'bl');
      await patient.keyboard.press('ArrowRight');
      assert.equal(await tile.getAttribute('data-corner'), 'br');
      await patient.keyboard.press('Enter');
      assert.equal(await tile.getAttribute('data-corner'), 'bl');
      await patient.keyboard.press('ArrowUp');
      assert.equal(await tile.getAttribute('data-corner'), 'tl');
      await checkPage(patient, 'call-phone-360');

      // Hang-up asks; «Остаться» keeps the call.
      await byTestId(patient, 'hangup').click();
      await byTestId(patient, 'hangup-confirm').waitFor({ state: 'visible' });
      await checkPage(patient, 'call-hangup-confirm-360');
      await byTestId(patient, 'hangup-cancel').click();
      assert.equal(await byTestId(patient, 'hangup-confirm').isVisible(), false);
      assert.equal(await byTestId(patient, 'connection-state').getAttribute('data-state'), 'connected');

      // «Завершить»: the call ends, and the page says what comes next.
      await hangUp(patient);
      await waitState(patient, 'ended');
      await byTestId(patient, 'after-call').waitFor({ state: 'visible' });
      assert.match(await byTestId(patient, 'after-call-next').textContent(), /Заключение врача появится в карточке консультации/);
      assert.equal(await byTestId(patient, 'after-call-cabinet').getAttribute('href'), '/consultations');
      assert.match(await byTestId(patient, 'after-call-help').textContent(), /^Помощь: .+/, 'the clinic\'s help line');
      assert.equal(await byTestId(patient, 'rejoin').isVisible(), true, 'joining again is offered');
      await checkPage(patient, 'call-after-360');

      // Told at once by the patient's «leave» (or, had it been lost, once the server notices).
      await until('the doctor is told', async () => /вышел из звонка|прервалась связь/.test((await byTestId(doctor, 'call-notice').textContent()) ?? ''), 25_000);
      await hangUp(doctor);
      await byTestId(doctor, 'after-call').waitFor({ state: 'visible' });
      assert.match(await byTestId(doctor, 'after-call-next').textContent(), /Напишите заключение/);
      assert.equal(await byTestId(doctor, 'after-call-cabinet').textContent(), 'Написать заключение');
      await checkPage(doctor, 'call-after-1280');
      await Promise.all([patient.context().close(), doctor.context().close()]);

      // Once the doctor closed it with the conclusion, the same link says so, before any prompt.
      const token = await join(patientSession);
      await api(server.base, 'POST', `/consultations/${consultationId}/complete`, {
        token: doctorSession,
        body: { conclusion: 'Рекомендации даны.' },
        status: 200,
      });
      const page = await open('closed-link', token, WIDE);
      await byTestId(page, 'page-message-title').waitFor({ state: 'visible', timeout: 15_000 });
      assert.equal(await byTestId(page, 'page-message-title').textContent(), 'Консультация завершена');
      assert.match(await byTestId(page, 'page-message-text').textContent(), /Заключение врача/);
      assert.equal(await page.evaluate(() => window.__cameraRequests), 0);
      await page.context().close();
    }),
  );

  test(
    'the demo page: three roles as cards, in plain words; the demo doctor reaches the cabinet',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      for (const [name, options] of [
        ['360', NARROW],
        ['1280', WIDE],
      ]) {
        const context = await browser.newContext(options);
        const page = await context.newPage();
        await page.goto(`${server.base}/demo`);
        const text = await page.locator('main').innerText();
        assert.doesNotMatch(text, /[0-9a-f]{8}-[0-9a-f]{4}-/, 'no ids for people to read');
        assert.doesNotMatch(text, /SFU|\dh\b/, 'plain words');
        assert.match(text, /Ссылки действуют \d+ (ч|мин)/);
        assert.equal(await page.locator('.demo-role').count(), 3);
        await checkPage(page, `demo-${name}`);
        if (name === '1280') {
          const cabinet = await byTestId(page, 'demo-doctor-cabinet').getAttribute('href');
          await page.goto(`${server.base}${cabinet}`);
          await byTestId(page, 'list-title').waitFor({ state: 'visible', timeout: 15_000 });
          assert.match(await byTestId(page, 'who-name').textContent(), /врач/i);
          await until('the demo consultation is on the doctor\'s list', async () => (await page.locator('[data-testid="consultation"]').count()) > 0, 15_000);
        }
        await context.close();
      }
    }),
  );

  test(
    'the clinic admin finds the consultation by the patient\'s name, in any case, and by state',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const { adminToken, consultationId } = consultation;
      for (const [name, options] of [
        ['1280', WIDE],
        ['360', NARROW],
      ]) {
        const context = await browser.newContext(options);
        const page = await context.newPage();
        await page.goto(`${server.base}/consultations#session=${encodeURIComponent(adminToken)}`);
        await byTestId(page, 'filters').waitFor({ state: 'visible', timeout: 15_000 });
        const rows = page.locator('[data-testid="consultation"]');
        const ids = async () => rows.evaluateAll((els) => els.map((el) => el.getAttribute('data-consultation-id')));
        await byTestId(page, 'search').fill('ЗАПИСИ');
        await until('the search finds the patient «Пациент Записи»', async () => {
          const found = await ids();
          return found.length === 1 && found[0] === consultationId;
        });
        await byTestId(page, 'search').fill('нет такого пациента');
        await until('nothing found', async () => (await rows.count()) === 0);
        await byTestId(page, 'consultations-empty').waitFor({ state: 'visible' });
        await byTestId(page, 'search').fill('');
        await byTestId(page, 'status-filter').selectOption('completed');
        await until('the completed one by state', async () => (await ids()).includes(consultationId));
        await checkPage(page, `admin-search-${name}`);
        await context.close();
      }
    }),
  );

  test(
    'the clinic admin takes a payment at the desk and cancels a booking with a reason',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const { adminToken } = consultation;
      // A booking by the portal, not paid, three hours ahead.
      const { key } = await api(server.base, 'POST', '/api-keys', { token: adminToken, body: { name: 'desk' }, status: 201 });
      const { id: patientId } = await api(server.base, 'POST', '/patients', { token: key, body: { name: 'Пациентка Кассова' }, status: 201 });
      const doctors = await api(server.base, 'GET', '/doctors', { token: key, status: 200 });
      const start = Math.ceil((Date.now() + 3 * 3_600_000) / 1000) * 1000;
      const doctor = doctors.find((d) => d.name === CLINIC_DOCTOR.name);
      const { id: slotId } = await api(server.base, 'POST', `/doctors/${doctor.id}/slots`, {
        token: key,
        body: { startsAt: new Date(start).toISOString(), endsAt: new Date(start + 30 * 60_000).toISOString(), priceKopecks: 90000 },
        status: 201,
      });
      const { id } = await api(server.base, 'POST', '/consultations', { token: key, body: { slotId, patientId }, status: 201 });

      const page = await (await browser.newContext(WIDE)).newPage();
      await page.goto(`${server.base}/consultations#session=${encodeURIComponent(adminToken)}`);
      await byTestId(page, 'search').fill('кассова');
      const row = page.locator(`[data-testid="consultation"][data-consultation-id="${id}"]`);
      await row.waitFor({ state: 'visible', timeout: 15_000 });
      // Asked first: Escape (the safe answer) leaves it booked.
      const ask = page.locator('[data-testid="ask"]');
      await row.locator('[data-testid="mark-paid"]').click();
      await ask.waitFor({ state: 'visible' });
      assert.match(await ask.innerText(), /Отметить оплату\?[\s\S]*заплатил в клинике/);
      await page.keyboard.press('Escape');
      await ask.waitFor({ state: 'hidden' });
      assert.equal(await row.getAttribute('data-status'), 'booked');
      assert.equal((await api(server.base, 'GET', `/consultations/${id}`, { token: adminToken, status: 200 })).status, 'booked');
      await row.locator('[data-testid="mark-paid"]').click();
      await ask.locator('[data-testid="ask-yes"]').click();
      await row.locator('[data-testid="consultation-status"][data-status="paid"]').waitFor({ timeout: 15_000 });
      assert.equal(await row.locator('[data-testid="mark-paid"]').count(), 0);
      await row.locator('[data-testid="cancel-consultation"]').click();
      // A reason is required: without one nothing is cancelled.
      await row.locator('[data-testid="cancel-confirm"]').click();
      assert.match(await row.locator('[data-testid="row-error"]').innerText(), /Укажите причину/);
      assert.equal(await row.getAttribute('data-status'), 'paid');
      await row.locator('[data-testid="cancel-reason"]').fill('Врач заболел');
      await row.locator('[data-testid="cancel-confirm"]').click();
      await row.locator('[data-testid="consultation-status"][data-status="cancelled"]').waitFor({ timeout: 15_000 });
      assert.match(await row.textContent(), /Врач заболел/);
      const audit = await api(server.base, 'GET', `/audit?objectId=${id}&limit=50`, { token: adminToken, status: 200 });
      const actions = audit.items.map((e) => e.action);
      assert.ok(actions.some((a) => a.includes('paid')) && actions.some((a) => a.includes('cancel')), actions.join(', '));
      await page.context().close();
    }),
  );
});
