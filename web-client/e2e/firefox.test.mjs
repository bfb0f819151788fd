// End-to-end: a patient in Firefox (Debian's firefox-esr, driven by puppeteer-core over WebDriver
// BiDi) and a doctor in Chromium see and hear each other through Vizit.
//
// Firefox's ICE gathers no candidates in a namespace that has only loopback, so it runs in a
// second network namespace, joined to the test's by a veth pair (10.77.0.0/24): Vizit listens on
// 10.77.0.1, Firefox reaches it from 10.77.0.2. puppeteer talks to Firefox on that namespace's
// loopback, so the Firefox side (firefox-peer.mjs) runs there too and reports over its stdout.
//
// Run like the other browser tests: scripts/e2e.sh (as root, in a network namespace).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import {
  CHROMIUM_ARGS,
  WEB_CLIENT,
  byTestId,
  launchBrowser,
  makeToken,
  newRoom,
  openCallPage,
  received,
  remember,
  startVizit,
  until,
  waitState,
  withDiagnostics,
  hangUp,
} from './harness.mjs';

const execFileP = promisify(execFile);
const TEST_TIMEOUT = 120_000;
const FIREFOX = '/usr/bin/firefox-esr';
const HOST = '10.77.0.1';
const PEER = '10.77.0.2';

/** What the Firefox side printed on stderr (its page's console), shown when the test fails. */
const firefoxLog = [];

describe('A patient in Firefox and a doctor in Chromium', { skip: !existsSync(FIREFOX) && 'no firefox-esr' }, () => {
  let holder; // `sleep` in Firefox's namespace: the namespace lives as long as it does
  let server;
  let browser;

  /** Run `args` in Firefox's namespace. */
  const inFirefoxNet = (args) => execFileP('nsenter', ['-t', String(holder.pid), '-n', ...args]);

  before(
    withDiagnostics(async () => {
      holder = spawn('unshare', ['-n', 'sleep', 'infinity'], { stdio: 'ignore' });
      await until('the Firefox namespace exists', async () => {
        try {
          await inFirefoxNet(['ip', 'link', 'set', 'lo', 'up']);
          return true;
        } catch {
          return false;
        }
      }, 5_000, 20);
      await execFileP('ip', ['link', 'add', 'vz-test', 'type', 'veth', 'peer', 'name', 'vz-firefox', 'netns', String(holder.pid)]);
      await execFileP('ip', ['addr', 'add', `${HOST}/24`, 'dev', 'vz-test']);
      await execFileP('ip', ['link', 'set', 'vz-test', 'up']);
      await inFirefoxNet(['ip', 'addr', 'add', `${PEER}/24`, 'dev', 'vz-firefox']);
      await inFirefoxNet(['ip', 'link', 'set', 'vz-firefox', 'up']);
      // Not demo mode: it would refuse to listen beyond loopback, and it is not needed here.
      server = await startVizit({
        VIZIT_DEMO: 'false',
        VIZIT_HTTP__LISTEN: `${HOST}:0`,
        VIZIT_MEDIA__UDP_BIND: `${HOST}:0`,
      });
      // Plain HTTP on a non-loopback address: Chromium must be told to treat it as secure to
      // give the page the (fake) camera.
      browser = await launchBrowser({
        args: [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${server.base}`],
      });
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await server.stop();
    await execFileP('ip', ['link', 'del', 'vz-test']).catch(() => {});
    holder?.kill('SIGKILL');
  });

  test(
    'they connect, each sees the other, and a hang-up in Firefox is seen in Chromium',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const room = newRoom();
      const [doctorToken, patientToken] = await Promise.all([
        makeToken(server.env, room, 'Доктор Иванова', 'doctor'),
        makeToken(server.env, room, 'Пациент в Firefox', 'patient'),
      ]);
      const doctor = await openCallPage(browser, server.base, 'doctor-chromium', doctorToken);
      await byTestId(doctor, 'join').click();

      const firefox = spawn(
        'nsenter',
        ['-t', String(holder.pid), '-n', process.execPath, join(WEB_CLIENT, 'e2e', 'firefox-peer.mjs'),
          `${server.base}/call#token=${encodeURIComponent(patientToken)}`],
        { cwd: WEB_CLIENT, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      createInterface({ input: firefox.stderr }).on('line', (l) => remember(firefoxLog, l, 100));
      const events = [];
      createInterface({ input: firefox.stdout }).on('line', (l) => {
        try {
          events.push(JSON.parse(l));
        } catch {
          remember(firefoxLog, l, 100);
        }
      });
      const exited = new Promise((r) => firefox.once('exit', r));
      const event = (name, timeout) =>
        until(
          () => `Firefox: ${name} (so far: ${JSON.stringify(events)}; log: ${firefoxLog.slice(-15).join(' | ')})`,
          () => {
            const failed = events.find((e) => e.event === 'error');
            if (failed) throw new Error(`Firefox side failed: ${failed.message}\n${firefoxLog.slice(-30).join('\n')}`);
            return events.find((e) => e.event === name);
          },
          timeout,
          100,
        );
      try {
        await event('connected', 90_000);
        await waitState(doctor, 'connected');
        const video = await event('video', 45_000);
        assert.ok(video.width > 0, `Firefox shows no picture of the doctor: ${JSON.stringify(video)}`);
        assert.ok(video.advanced > 1, `the doctor's picture does not play in Firefox: ${JSON.stringify(video)}`);
        console.log(`Firefox shows the doctor at ${video.width} px wide, ${video.advanced.toFixed(1)} s played in 3 s`);
        await until('Chromium decodes the Firefox patient', async () => {
          const r = await received(doctor);
          return r.framesDecoded > 10 && r.audioPackets > 10;
        }, 30_000);
        assert.match(await byTestId(doctor, 'remote-name').textContent(), /Пациент в Firefox/);

        firefox.stdin.write('hangup\n');
        await event('ended', 20_000);
        await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 15_000 });
      } finally {
        firefox.stdin.end();
        firefox.kill('SIGTERM');
        await exited;
      }
      await hangUp(doctor);
      await doctor.context().close();
    }),
  );
});
