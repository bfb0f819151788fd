// End-to-end: the "my consultations" page (/consultations) with the real Vizit server, its REST
// API and Debian's Chromium. A clinic (admin + portal API key) sets up a doctor, slots and a
// patient; the patient books on the page (and meets a taken slot, a call not open yet, and
// cancels one), is marked paid by the portal, and joins the call; the doctor logs in on the
// page, joins, and completes the consultation; the audit log has it all. Also: the login
// states (a dead handed-over session, a wrong password, the demo patient, a 401, logout).
//
// Run like call.test.mjs, inside a network namespace that has only loopback, as root:
//   unshare -n bash -c 'ip link set lo up; cd web-client && node --test e2e/'
// The server binary: $VIZIT_BIN, else ../target/debug/vizit (it embeds web-client/dist, so build
// the web client first, then the server).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  api,
  byTestId,
  chooseDoctor,
  consoleLog,
  createStaff,
  launchBrowser,
  received,
  remember,
  startVizit,
  until,
  waitState,
  withDiagnostics,
  checkPage,
} from './harness.mjs';

const TEST_TIMEOUT = 90_000;
const ADMIN = { role: 'admin', email: 'admin@clinic.test', name: 'Админ' };
const DOCTOR = { role: 'doctor', email: 'doctor@clinic.test', name: 'Доктор Иванова', specialty: 'Терапевт' };
const PATIENT = 'Пациент Петров';
const ADMIN_PASSWORD = 'admin-password-1';
const DOCTOR_PASSWORD = 'doctor-password-1';
const ZONE = 'Europe/Moscow'; // the CLI's default time zone for a doctor
const CONCLUSION = 'ОРВИ. Обильное питьё, контроль температуры, повторный приём через неделю.';

/** RFC 3339 in UTC, whole seconds. */
const rfc3339 = (ms) => new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** "10:05" for `iso` in `zone`, as the page writes it. */
const clock = (iso, zone) =>
  new Intl.DateTimeFormat('ru-RU', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(
    new Date(iso),
  );

// ---- pages -----------------------------------------------------------------------------------

/** The patient lives two hours east of the doctor (Moscow): the page must show the patient's clock. */
const PATIENT_ZONE = 'Asia/Yekaterinburg';

/** A new browser context (camera and microphone allowed) and page; its console goes to the diagnostics. */
async function openPage(browser, label, options = {}) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], ...options });
  const page = await context.newPage();
  page.on('console', (m) => remember(consoleLog, `[${label}] ${m.type()}: ${m.text()}`, 300));
  page.on('pageerror', (e) => remember(consoleLog, `[${label}] pageerror: ${e.message}`, 300));
  return page;
}

/** Pick the day of `iso` (in the page's zone) on the booking's strip. */
async function showDay(page, iso) {
  const day = await page.evaluate(
    (at) => new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(at)),
    iso,
  );
  await page.locator(`[data-testid="day"][data-day="${day}"]`).click();
}

const row = (page, id) => page.locator(`[data-testid="consultation"][data-consultation-id="${id}"]`);
const inRow = (page, id, testId) => row(page, id).locator(`[data-testid="${testId}"]`);

/** Wait until the consultation's row shows `status` (data attribute and Russian text). */
async function waitStatus(page, id, status, text, timeout = 15_000) {
  await page
    .locator(`[data-testid="consultation"][data-consultation-id="${id}"] [data-testid="consultation-status"][data-status="${status}"]`)
    .waitFor({ state: 'visible', timeout });
  assert.equal((await inRow(page, id, 'consultation-status').textContent()).trim(), text);
}

const storedSession = (page) => page.evaluate(() => window.sessionStorage.getItem('vizit.session'));

/** On the call page (after a Join on /consultations): wait for the preview, then Join. */
async function joinOnCallPage(page, label) {
  // The page takes the token out of the address bar once loaded.
  await page.waitForURL((url) => url.pathname === '/call' && !url.href.includes('token'), { timeout: 15_000 });
  await byTestId(page, 'join').waitFor({ state: 'visible', timeout: 20_000 });
  await until(`${label}: Join enabled on the call page`, () => byTestId(page, 'join').isEnabled(), 20_000);
  await byTestId(page, 'join').click();
}

/** Polls until the page decodes remote video and its <video> has a size. */
async function waitRemoteVideo(page, label) {
  let last = null;
  await until(
    () => `${label}: decoded remote video with a size (last: ${JSON.stringify(last)})`,
    async () => {
      const s = await received(page);
      last = s;
      return s.framesDecoded > 0 && s.videoWidth > 0;
    },
    45_000,
  );
}

// ---- the tests -------------------------------------------------------------------------------

describe('My consultations page with the real server, its API and Chromium', () => {
  let server; // startVizit()
  let base;
  let browser;
  // Set up by the first tests, used by the later ones.
  let adminToken;
  let apiKey;
  let doctorId;
  let patientId;
  let patientToken;
  let slotId; // starts in 2 minutes: the call is open
  let laterSlotId; // starts in 3 hours: the call is not open yet
  let slotStart;
  let laterStart;
  let consultationId; // booked on the page, for `slotId`
  let laterConsultationId; // booked by the portal, for `laterSlotId`
  let patient; // page
  let doctor; // page
  let doctorToken;
  let setUp = false;
  let booked = false;
  let callUp = false;

  before(
    withDiagnostics(async () => {
      server = await startVizit();
      base = server.base;
      // The CLI opens the server's SQLite file alongside it (WAL): staff exist at once.
      await createStaff(server.env, ADMIN, ADMIN_PASSWORD);
      doctorId = await createStaff(server.env, DOCTOR, DOCTOR_PASSWORD);
      browser = await launchBrowser();
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
  });

  test(
    'the clinic sets up a doctor\'s slots and a patient through the API',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const login = await api(base, 'POST', '/auth/login', {
        body: { email: ADMIN.email, password: ADMIN_PASSWORD },
        status: 200,
      });
      assert.equal(login.user.role, 'admin');
      adminToken = login.token;

      ({ key: apiKey } = await api(base, 'POST', '/api-keys', { token: adminToken, body: { name: 'portal' }, status: 201 }));
      assert.match(apiKey, /^vzk_/);

      ({ id: patientId } = await api(base, 'POST', '/patients', { token: apiKey, body: { name: PATIENT }, status: 201 }));

      const doctors = await api(base, 'GET', '/doctors', { token: apiKey, status: 200 });
      const listed = doctors.find((d) => d.name === DOCTOR.name);
      assert.ok(listed, `GET /doctors lists no ${DOCTOR.name}: ${JSON.stringify(doctors)}`);
      assert.equal(listed.id, doctorId, 'the doctor listed is not the one the CLI created');
      assert.equal(listed.timeZone, ZONE);

      const now = Date.now();
      const slot = (startMs) => ({
        startsAt: rfc3339(startMs),
        endsAt: rfc3339(startMs + 30 * 60_000),
        priceKopecks: 150000,
      });
      ({ id: slotId, startsAt: slotStart } = await api(base, 'POST', `/doctors/${doctorId}/slots`, {
        token: apiKey,
        body: slot(now + 2 * 60_000),
        status: 201,
      }));
      ({ id: laterSlotId, startsAt: laterStart } = await api(base, 'POST', `/doctors/${doctorId}/slots`, {
        token: apiKey,
        body: slot(now + 3 * 3_600_000),
        status: 201,
      }));

      const session = await api(base, 'POST', `/patients/${patientId}/sessions`, { token: apiKey, status: 201 });
      assert.equal(session.user.role, 'patient');
      assert.match(session.token, /^vzs_/);
      patientToken = session.token;
      setUp = true;
    }),
  );

  test(
    'login states: a dead session, a wrong password, the demo patient, logout',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const page = await openPage(browser, 'login');
      try {
        // A handed-over session the server does not know: back to the login form, and why.
        await page.goto(`${base}/consultations#session=vzs_${'0'.repeat(64)}`);
        await byTestId(page, 'login-form').waitFor({ state: 'visible', timeout: 15_000 });
        await until('the "session expired" message', async () =>
          ((await byTestId(page, 'page-message').textContent()) ?? '').includes('Сессия истекла, войдите снова'),
        );
        assert.equal(new URL(page.url()).hash, '', 'the session fragment is still in the address bar');
        assert.equal(await storedSession(page), null, 'a rejected session is still stored');

        // Wrong password.
        await byTestId(page, 'login-email').fill(DOCTOR.email);
        await byTestId(page, 'login-password').fill('not-the-password');
        await byTestId(page, 'login-submit').click();
        await byTestId(page, 'login-error').waitFor({ state: 'visible', timeout: 15_000 });
        assert.match(await byTestId(page, 'login-error').textContent(), /Неверный e-mail или пароль/);

        // The server runs in demo mode (harness): the demo patient gets an empty list and booking.
        await byTestId(page, 'demo-login').click();
        await byTestId(page, 'list-title').waitFor({ state: 'visible', timeout: 15_000 });
        assert.equal((await byTestId(page, 'list-title').textContent()).trim(), 'Мои консультации');
        await byTestId(page, 'consultations-empty').waitFor({ state: 'visible', timeout: 15_000 });
        await byTestId(page, 'booking-section').waitFor({ state: 'visible' });
        assert.ok(await byTestId(page, 'login').isHidden(), 'the login form is still shown');

        // The session is revoked behind the page's back: the next call answers 401.
        const demoToken = await storedSession(page);
        assert.ok(demoToken?.startsWith('vzs_'), 'the demo session is not in sessionStorage');
        await api(base, 'POST', '/auth/logout', { token: demoToken, status: 204 });
        await byTestId(page, 'refresh').click();
        await byTestId(page, 'login-form').waitFor({ state: 'visible', timeout: 15_000 });
        assert.match(await byTestId(page, 'page-message').textContent(), /Сессия истекла, войдите снова/);
        assert.equal(await storedSession(page), null);

        // Logout ends the session on the server too.
        await byTestId(page, 'demo-login').click();
        await byTestId(page, 'list-title').waitFor({ state: 'visible', timeout: 15_000 });
        const second = await storedSession(page);
        await byTestId(page, 'logout').click();
        await byTestId(page, 'login-form').waitFor({ state: 'visible', timeout: 15_000 });
        assert.equal(await storedSession(page), null);
        const problem = await api(base, 'GET', '/me', { token: second, status: 401 });
        assert.equal(problem.code, 'invalid_credentials');
      } finally {
        await page.context().close();
      }
    }),
  );

  test(
    'the patient books on the page, is marked paid by the portal, and joins the call',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      patient = await openPage(browser, 'patient', { timezoneId: PATIENT_ZONE, bypassCSP: true });
      await patient.goto(`${base}/consultations#session=${encodeURIComponent(patientToken)}`);
      await byTestId(patient, 'list-title').waitFor({ state: 'visible', timeout: 15_000 });
      assert.equal(new URL(patient.url()).hash, '', 'the session fragment is still in the address bar');
      assert.ok((await storedSession(patient)) === patientToken, 'the handed-over session is not in sessionStorage');
      assert.match(await byTestId(patient, 'who-name').textContent(), new RegExp(PATIENT));
      await byTestId(patient, 'consultations-empty').waitFor({ state: 'visible', timeout: 15_000 });

      // Pick the doctor: a strip of days; each slot is under its day, at the patient's clock.
      await chooseDoctor(patient, { id: doctorId });
      const slotRow = patient.locator(`[data-testid="slot"][data-slot-id="${slotId}"]`);
      const laterRow = patient.locator(`[data-testid="slot"][data-slot-id="${laterSlotId}"]`);
      await byTestId(patient, 'days').waitFor({ state: 'visible', timeout: 15_000 });
      assert.ok((await patient.locator('[data-testid="day"]').count()) >= 14, 'two weeks of days');
      await showDay(patient, laterStart);
      await laterRow.waitFor({ state: 'visible', timeout: 15_000 });
      assert.equal((await laterRow.textContent()).trim(), clock(laterStart, PATIENT_ZONE), 'the patient\'s clock');
      assert.notEqual(clock(laterStart, PATIENT_ZONE), clock(laterStart, ZONE));
      assert.match(await byTestId(patient, 'zone-note').textContent(), /по вашему часовому поясу/);
      await showDay(patient, slotStart);
      await slotRow.waitFor({ state: 'visible', timeout: 15_000 });
      await checkPage(patient, 'booking-days-desktop');

      // Someone else takes the later slot first (here: the portal, for this patient).
      ({ id: laterConsultationId } = await api(base, 'POST', '/consultations', {
        token: apiKey,
        body: { slotId: laterSlotId, patientId },
        status: 201,
      }));
      await showDay(patient, laterStart);
      await laterRow.locator('[data-testid="book-slot"]').click();
      // The confirmation: whom, when (the patient's clock, the doctor's too), the price, the rules.
      await byTestId(patient, 'booking-confirm').waitFor({ state: 'visible' });
      const confirm = await byTestId(patient, 'booking-confirm').textContent();
      assert.match(confirm, new RegExp(DOCTOR.name));
      assert.ok(confirm.includes(clock(laterStart, PATIENT_ZONE)) && confirm.includes(clock(laterStart, ZONE)), confirm);
      assert.match(confirm, /1\s500/);
      assert.match(confirm, /неоплаченная запись отменяется/);
      await checkPage(patient, 'booking-confirm-desktop');
      await byTestId(patient, 'book-confirm').click();
      await byTestId(patient, 'booking-error').waitFor({ state: 'visible', timeout: 15_000 });
      assert.match(await byTestId(patient, 'booking-error').textContent(), /Этот слот уже занят, выберите другой/);
      await laterRow.waitFor({ state: 'detached', timeout: 15_000 });

      // Book the slot that starts in 2 minutes («Выбрать другое время» first: nothing is booked).
      await showDay(patient, slotStart);
      await slotRow.locator('[data-testid="book-slot"]').click();
      await byTestId(patient, 'book-back').click();
      assert.equal(await byTestId(patient, 'booking-confirm').isVisible(), false);
      const before = await api(base, 'GET', `/consultations?limit=200`, { token: patientToken, status: 200 });
      assert.ok(!before.items.some((c) => c.slotId === slotId), 'nothing booked without the confirmation');
      await slotRow.locator('[data-testid="book-slot"]').click();
      await byTestId(patient, 'book-confirm').click();
      const rows = patient.locator('[data-testid="consultation"]');
      await until('two consultation rows on the patient page', async () => (await rows.count()) === 2, 15_000);
      const booking = await api(base, 'GET', `/consultations?limit=200`, { token: patientToken, status: 200 });
      const mine = booking.items.find((c) => c.slotId === slotId);
      assert.ok(mine, 'the booked consultation is not in the patient\'s list');
      consultationId = mine.id;
      assert.equal(mine.status, 'booked');
      assert.ok(await row(patient, consultationId).isVisible(), 'no row for the booked consultation');
      await waitStatus(patient, consultationId, 'booked', 'Ожидает оплаты');
      assert.equal(await inRow(patient, consultationId, 'join-consultation').count(), 0, 'Join offered before payment');
      await slotRow.waitFor({ state: 'detached', timeout: 15_000 });
      booked = true;

      // The row tells the doctor, and the time in the slot's zone, with the zone's name.
      const text = await row(patient, consultationId).textContent();
      assert.match(text, new RegExp(DOCTOR.name));
      assert.match(text, new RegExp(DOCTOR.specialty));
      assert.ok(text.includes(ZONE), `the row does not name the time zone: ${text}`);
      assert.ok(text.includes(clock(mine.startsAt, ZONE)), `the row does not show the start in ${ZONE}: ${text}`);
      assert.ok(text.includes(clock(mine.endsAt, ZONE)), `the row does not show the end in ${ZONE}: ${text}`);

      // The portal takes the payment; the patient reloads (the session survives in the tab).
      const paid = await api(base, 'POST', `/consultations/${consultationId}/payment`, { token: apiKey, status: 200 });
      assert.equal(paid.status, 'paid');
      await api(base, 'POST', `/consultations/${laterConsultationId}/payment`, { token: apiKey, status: 200 });
      await patient.reload();
      await waitStatus(patient, consultationId, 'paid', 'Оплачена');
      await waitStatus(patient, laterConsultationId, 'paid', 'Оплачена');

      // The later consultation's call is not open yet: its button says when it opens (15 min
      // before the start, at the patient's clock) and cannot be pressed before.
      const laterJoin = inRow(patient, laterConsultationId, 'join-consultation');
      assert.equal(await laterJoin.isDisabled(), true);
      assert.equal(
        await laterJoin.textContent(),
        `Звонок откроется в ${clock(new Date(Date.parse(laterStart) - 15 * 60_000).toISOString(), PATIENT_ZONE)}`,
      );
      assert.equal(await inRow(patient, consultationId, 'join-consultation').isDisabled(), false, 'the open one can be joined');
      assert.equal(new URL(patient.url()).pathname, '/consultations');

      // The patient cancels it instead, giving a reason in the row's form.
      await inRow(patient, laterConsultationId, 'cancel-consultation').click();
      await inRow(patient, laterConsultationId, 'cancel-reason').fill('Не смогу прийти');
      await inRow(patient, laterConsultationId, 'cancel-confirm').click();
      await waitStatus(patient, laterConsultationId, 'cancelled', 'Отменена');
      assert.match(await row(patient, laterConsultationId).textContent(), /Причина отмены: Не смогу прийти/);
      assert.equal(await inRow(patient, laterConsultationId, 'join-consultation').count(), 0);
      const cancelled = await api(base, 'GET', `/consultations/${laterConsultationId}`, { token: apiKey, status: 200 });
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.cancelReason, 'Не смогу прийти');

      // Join the one that starts in 2 minutes: on to the call page, and into the call.
      await inRow(patient, consultationId, 'join-consultation').click();
      await joinOnCallPage(patient, 'patient');
      await waitState(patient, 'connected');
    }, { needs: () => setUp }),
  );

  test(
    'the doctor logs in on the page, joins, and both see each other',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      doctor = await openPage(browser, 'doctor');
      await doctor.goto(`${base}/consultations`);
      await byTestId(doctor, 'login-form').waitFor({ state: 'visible', timeout: 15_000 });
      await byTestId(doctor, 'login-email').fill(DOCTOR.email);
      await byTestId(doctor, 'login-password').fill(DOCTOR_PASSWORD);
      await byTestId(doctor, 'login-submit').click();
      await byTestId(doctor, 'list-title').waitFor({ state: 'visible', timeout: 15_000 });
      doctorToken = await storedSession(doctor);
      assert.ok(doctorToken?.startsWith('vzs_'), 'the doctor\'s session is not in sessionStorage');

      // The patient's Join started the consultation.
      await waitStatus(doctor, consultationId, 'in_progress', 'Идёт');
      assert.match(await row(doctor, consultationId).textContent(), new RegExp(PATIENT));
      assert.ok(await byTestId(doctor, 'booking-section').isHidden(), 'a doctor is offered booking');

      await inRow(doctor, consultationId, 'join-consultation').click();
      await joinOnCallPage(doctor, 'doctor');
      await Promise.all([waitState(doctor, 'connected'), waitState(patient, 'connected')]);
      await Promise.all([waitRemoteVideo(patient, 'patient'), waitRemoteVideo(doctor, 'doctor')]);
      await until('the doctor sees the patient\'s name', async () =>
        ((await byTestId(doctor, 'remote-name').textContent()) ?? '').includes(PATIENT),
      );
      callUp = true;
    }, { needs: () => booked }),
  );

  test(
    'the doctor completes the consultation; the patient sees the conclusion; the audit log has every step',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      // Back to the list in the same tab: the session is still in sessionStorage.
      await doctor.goto(`${base}/consultations`);
      await waitStatus(doctor, consultationId, 'in_progress', 'Идёт');
      await inRow(doctor, consultationId, 'conclusion').fill(CONCLUSION);
      await inRow(doctor, consultationId, 'complete-consultation').click();
      await waitStatus(doctor, consultationId, 'completed', 'Завершена');
      assert.equal(await inRow(doctor, consultationId, 'join-consultation').count(), 0, 'Join offered after completion');
      assert.equal(await inRow(doctor, consultationId, 'complete-consultation').count(), 0);
      assert.equal((await inRow(doctor, consultationId, 'conclusion-text').textContent()).trim(), CONCLUSION);

      // The patient's list shows it too.
      await patient.goto(`${base}/consultations`);
      await waitStatus(patient, consultationId, 'completed', 'Завершена');
      assert.equal((await inRow(patient, consultationId, 'conclusion-text').textContent()).trim(), CONCLUSION);

      const stored = await api(base, 'GET', `/consultations/${consultationId}`, { token: adminToken, status: 200 });
      assert.equal(stored.status, 'completed');
      assert.equal(stored.conclusion, CONCLUSION);

      const audit = await api(base, 'GET', `/audit?objectId=${consultationId}&limit=200`, { token: adminToken, status: 200 });
      const actions = new Set(audit.items.map((e) => e.action));
      for (const action of ['consultation.book', 'consultation.paid', 'consultation.join', 'consultation.completed']) {
        assert.ok(actions.has(action), `no ${action} in the audit log of the consultation: ${[...actions].join(', ')}`);
      }
      const joins = audit.items.filter((e) => e.action === 'consultation.join').map((e) => e.actorRole);
      assert.deepEqual([...new Set(joins)].sort(), ['doctor', 'patient'], 'both should have joined');

      // No page wrote a session token or the patient's name to its console.
      const leaks = consoleLog.filter(
        (line) => line.includes(patientToken) || line.includes(doctorToken) || line.includes(PATIENT),
      );
      assert.equal(leaks.length, 0, `console lines with a token or personal data: ${leaks.length}`);
    }, { needs: () => callUp }),
  );
});
