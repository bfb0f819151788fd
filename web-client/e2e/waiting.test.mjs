// End-to-end: the waiting room (signaling.waiting_room, on by default). The patient joins first
// and waits — own preview, «Врач скоро подключит вас», nothing of theirs sent anywhere; the
// doctor joins, sees who waits and admits; both then see and hear each other. A reload of the
// admitted patient goes straight back in.
//
// Run like the other browser tests: scripts/e2e.sh (a network namespace with only loopback).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  SCREENS,
  VIEWPORTS,
  byTestId,
  launchBrowser,
  makeToken,
  newRoom,
  openCallPage,
  received,
  startVizit,
  until,
  waitState,
  withDiagnostics,
  hangUp,
} from './harness.mjs';

const TEST_TIMEOUT = 90_000;
const PATIENT = 'Пациент Сидоров';

describe('The waiting room', () => {
  let server;
  let browser;

  before(
    withDiagnostics(async () => {
      server = await startVizit({ VIZIT_SIGNALING__WAITING_ROOM: 'true' });
      browser = await launchBrowser();
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
  });

  test(
    'the patient waits until the doctor admits them, then the call connects',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const room = newRoom();
      const [doctorToken, patientToken] = await Promise.all([
        makeToken(server.env, room, 'Доктор Иванова', 'doctor'),
        makeToken(server.env, room, PATIENT, 'patient'),
      ]);
      const patient = await openCallPage(browser, server.base, 'patient-lobby', patientToken);
      await byTestId(patient, 'join').click();
      await waitState(patient, 'waiting');
      const text = await byTestId(patient, 'waiting').textContent();
      assert.match(text, /Врач скоро подключит вас/);
      // Nothing of the patient's goes anywhere: no peer connection yet.
      assert.equal(await patient.evaluate(() => window.vizit.pc() === null), true);
      await mkdir(SCREENS, { recursive: true });
      await patient.screenshot({ path: join(SCREENS, 'call-waiting-room-desktop.png') });
      await patient.setViewportSize(VIEWPORTS.phone.viewport);
      await patient.screenshot({ path: join(SCREENS, 'call-waiting-room-phone.png') });
      await patient.setViewportSize(VIEWPORTS.desktop.viewport);

      const doctor = await openCallPage(browser, server.base, 'doctor-lobby', doctorToken);
      await byTestId(doctor, 'join').click();
      await waitState(doctor, 'connecting');
      const list = byTestId(doctor, 'waiting-list');
      await list.waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await list.textContent(), new RegExp(PATIENT));
      await doctor.screenshot({ path: join(SCREENS, 'call-waiting-list-desktop.png') });
      // Still waiting: the doctor has not admitted them.
      assert.equal(await byTestId(patient, 'connection-state').getAttribute('data-state'), 'waiting');

      await byTestId(doctor, 'admit').click();
      await Promise.all([waitState(doctor, 'connected'), waitState(patient, 'connected')]);
      await list.waitFor({ state: 'hidden', timeout: 10_000 });
      for (const page of [doctor, patient]) {
        await until('video decoded', async () => (await received(page)).framesDecoded > 10, 30_000);
      }

      // Admitted once: a reload goes straight back into the call.
      await patient.reload();
      await until('Join enabled after the reload', () => byTestId(patient, 'join').isEnabled(), 20_000);
      await byTestId(patient, 'join').click();
      await waitState(patient, 'connected');
      assert.equal(await byTestId(doctor, 'waiting-list').isVisible(), false);

      await hangUp(patient);
      await hangUp(doctor);
      await Promise.all([doctor.context().close(), patient.context().close()]);
    }),
  );
});
