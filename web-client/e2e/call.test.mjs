// End-to-end: the real Vizit server, Debian's Chromium with fake camera and microphone, two
// people in one Room. Asserts what a user would notice: connected, picture decoded, sound
// received, mute shown on the other side, hang-up seen by the other side.
//
// Run inside a network namespace that has only loopback (docs: shared/TESTING.md), as root:
//   unshare -n bash -c 'ip link set lo up; cd web-client && node --test e2e/'
// The server binary: $VIZIT_BIN, else ../target/debug/vizit (relative to web-client/).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const WEB_CLIENT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.VIZIT_BIN ? resolve(process.env.VIZIT_BIN) : join(WEB_CLIENT, '..', 'target', 'debug', 'vizit');
const TEST_TIMEOUT = 60_000;
const DOCTOR = 'Доктор Иванова';
const PATIENT = 'Пациент Петров';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

const execFileP = promisify(execFile);

// ---- diagnostics ---------------------------------------------------------------------------

/** Last lines of the server's stderr and of every page's console, printed when a test fails. */
const serverLog = [];
const consoleLog = [];

function remember(list, line, max) {
  list.push(line);
  if (list.length > max) list.splice(0, list.length - max);
}

function dumpDiagnostics() {
  console.log('---- server stderr (tail) ----');
  console.log(serverLog.join('\n') || '(empty)');
  console.log('---- browser console (tail) ----');
  console.log(consoleLog.join('\n') || '(empty)');
}

/** Wrap a test body so that a failure prints what the server and the pages said. */
function withDiagnostics(fn, { needs } = {}) {
  return async (t) => {
    // A test that builds on an earlier one fails fast, without repeating the same dump.
    if (needs) assert.ok(needs(), 'an earlier test failed to set up the call this one needs');
    try {
      await fn(t);
    } catch (e) {
      dumpDiagnostics();
      throw e;
    }
  };
}

// ---- the server ----------------------------------------------------------------------------

function serverEnv(dataDir, secret) {
  return {
    ...process.env,
    VIZIT_HTTP__LISTEN: '127.0.0.1:0',
    VIZIT_MEDIA__UDP_BIND: '127.0.0.1:0',
    VIZIT_DATA_DIR: dataDir,
    VIZIT_AUTH__TOKEN_SECRET: secret,
    VIZIT_DEMO: 'true',
    RUST_LOG: 'info',
  };
}

/** Start `vizit serve`; resolves with the base URL it prints on stdout. */
function startServer(env) {
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  createInterface({ input: child.stderr }).on('line', (line) => remember(serverLog, line, 200));
  const url = new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('the server printed no "Vizit is listening on" line in 30 s')), 30_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      remember(serverLog, `[stdout] ${line}`, 200);
      const m = /^Vizit is listening on (http:\/\/\S+?)\/?$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited before listening (code ${code}, signal ${signal})`));
    });
  });
  return { child, url };
}

async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function makeToken(env, room, name, role) {
  const { stdout } = await execFileP(BIN, ['token', '--room', room, '--name', name, '--role', role], { env });
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `vizit token printed no JWT: ${JSON.stringify(stdout)}`);
  return token;
}

// ---- pages ---------------------------------------------------------------------------------

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

async function waitState(page, state, timeout = 30_000) {
  await page.locator(`[data-testid="connection-state"][data-state="${state}"]`).waitFor({ state: 'visible', timeout });
}

/**
 * Poll `probe` until it returns a truthy value; returns that value. `what` names the wait in the
 * timeout error; a function is called then, so it can report the last thing it saw.
 */
async function until(what, probe, timeout = 30_000, interval = 50) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** What the page receives, from its RTCPeerConnection's stats. Runs in the page. */
function readReceived() {
  const video = document.querySelector('[data-testid="remote-video"]');
  const result = { framesDecoded: 0, audioPackets: 0, videoWidth: video ? video.videoWidth : 0 };
  const pc = window.vizit && window.vizit.pc();
  if (!pc) return Promise.resolve(result);
  return pc.getStats().then((stats) => {
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const kind = r.kind || r.mediaType;
      if (kind === 'video') result.framesDecoded += r.framesDecoded || 0;
      if (kind === 'audio') result.audioPackets += r.packetsReceived || 0;
    });
    return result;
  });
}

const received = (page) => page.evaluate(readReceived);

/** True when the remote video shows no live picture any more. Runs in the page. */
function remoteVideoCleared() {
  const video = document.querySelector('[data-testid="remote-video"]');
  const stream = video.srcObject;
  return stream === null || stream.getVideoTracks().every((t) => t.readyState === 'ended');
}

/** The local track of `kind` that the page's peer connection sends, if any. Runs in the page. */
function senderTrackEnabled(kind) {
  const pc = window.vizit.pc();
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === kind);
  return sender ? sender.track.enabled : null;
}

// ---- the tests -----------------------------------------------------------------------------

describe('Vizit call page with the real server and Chromium', () => {
  let dataDir;
  let server;
  let env;
  let base;
  let browser;
  let doctor; // page
  let patient; // page
  let callUp = false;

  async function openCall(label, token, { denyMedia = false } = {}) {
    const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
    if (denyMedia) {
      // As if the user had clicked "Block" in the permission prompt.
      await context.addInitScript(() => {
        MediaDevices.prototype.getUserMedia = () =>
          Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
      });
    }
    const page = await context.newPage();
    page.on('console', (m) => remember(consoleLog, `[${label}] ${m.type()}: ${m.text()}`, 300));
    page.on('pageerror', (e) => remember(consoleLog, `[${label}] pageerror: ${e.message}`, 300));
    await page.goto(`${base}/call?token=${encodeURIComponent(token)}`);
    // The preview is ready (media asked for) once Join is enabled.
    await byTestId(page, 'join').waitFor({ state: 'visible', timeout: 20_000 });
    await until(`${label}: Join enabled`, () => byTestId(page, 'join').isEnabled(), 20_000);
    return page;
  }

  before(
    withDiagnostics(async () => {
      assert.ok(existsSync(BIN), `no server binary at ${BIN}: build it (cargo build) or set VIZIT_BIN`);
      dataDir = await mkdtemp(join(tmpdir(), 'vizit-e2e-'));
      env = serverEnv(dataDir, randomBytes(32).toString('hex'));
      server = startServer(env);
      base = await server.url;
      browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    }),
    { timeout: TEST_TIMEOUT },
  );

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) await stopServer(server.child);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test(
    'doctor and patient see and hear each other',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const room = `e2e-${randomBytes(6).toString('hex')}`;
      const [doctorToken, patientToken] = await Promise.all([
        makeToken(env, room, DOCTOR, 'doctor'),
        makeToken(env, room, PATIENT, 'patient'),
      ]);
      [doctor, patient] = await Promise.all([openCall('doctor', doctorToken), openCall('patient', patientToken)]);

      await byTestId(doctor, 'join').click();
      await waitState(doctor, 'connected');
      await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 10_000 });

      const joinedAt = Date.now();
      await byTestId(patient, 'join').click();
      await Promise.all([waitState(doctor, 'connected'), waitState(patient, 'connected')]);

      // Polls until video is decoded, audio arrives and the <video> has a size; notes when the
      // first frame was decoded (50 ms polling resolution).
      const media = async (page, label) => {
        let firstFrameMs = null;
        let last = null;
        const r = await until(
          () => `${label}: remote video frames, audio packets and a video size (last: ${JSON.stringify(last)})`,
          async () => {
            const s = await received(page);
            last = s;
            if (firstFrameMs === null && s.framesDecoded > 0) firstFrameMs = Date.now() - joinedAt;
            return s.framesDecoded > 0 && s.audioPackets > 0 && s.videoWidth > 0 ? s : null;
          },
          45_000,
        );
        return { firstFrameMs, ...r };
      };
      const [p, d] = await Promise.all([media(patient, 'patient'), media(doctor, 'doctor')]);
      console.log(
        `first decoded remote frame after the patient's Join click: patient ${p.firstFrameMs} ms, ` +
          `doctor ${d.firstFrameMs} ms (remote video ${p.videoWidth}px / ${d.videoWidth}px wide)`,
      );

      await until('the doctor sees the patient\'s name', async () =>
        (await byTestId(doctor, 'remote-name').textContent()).includes(PATIENT),
      );
      await until('the patient sees the doctor\'s name', async () =>
        (await byTestId(patient, 'remote-name').textContent()).includes(DOCTOR),
      );
      assert.ok(await byTestId(doctor, 'waiting').isHidden(), 'the doctor still sees "waiting" with the patient in');
      assert.match(await byTestId(patient, 'call-timer').textContent(), /^\d\d:\d\d$/);
      callUp = true;
    }),
  );

  test(
    'mute is shown on the other side',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      for (const [kind, button, badge] of [
        ['audio', 'toggle-mic', 'remote-audio-muted'],
        ['video', 'toggle-camera', 'remote-video-muted'],
      ]) {
        assert.ok(await byTestId(doctor, badge).isHidden(), `${badge} shown before any mute`);

        await byTestId(patient, button).click();
        await byTestId(doctor, badge).waitFor({ state: 'visible', timeout: 10_000 });
        assert.equal(await byTestId(patient, button).getAttribute('aria-pressed'), 'true');
        assert.equal(await patient.evaluate(senderTrackEnabled, kind), false, `patient's ${kind} track still enabled`);

        await byTestId(patient, button).click();
        await byTestId(doctor, badge).waitFor({ state: 'hidden', timeout: 10_000 });
        assert.equal(await byTestId(patient, button).getAttribute('aria-pressed'), 'false');
        assert.equal(await patient.evaluate(senderTrackEnabled, kind), true, `patient's ${kind} track still disabled`);
      }
    }, { needs: () => callUp }),
  );

  test(
    'hang up removes the participant',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      await byTestId(patient, 'hangup').click();
      await waitState(patient, 'ended', 10_000);

      await byTestId(doctor, 'waiting').waitFor({ state: 'visible', timeout: 15_000 });
      await until('the doctor\'s remote video to be cleared', () => doctor.evaluate(remoteVideoCleared), 15_000);
      await until('the doctor\'s page to say who left', async () =>
        (await byTestId(doctor, 'call-notice').textContent()).includes(PATIENT),
      );
      assert.equal(await doctor.evaluate(() => window.vizit.state()), 'connected', 'the doctor lost the call');
    }, { needs: () => callUp }),
  );

  test(
    'receive-only join works when the camera is not available',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const room = `e2e-${randomBytes(6).toString('hex')}`;
      const [doctorToken, patientToken] = await Promise.all([
        makeToken(env, room, DOCTOR, 'doctor'),
        makeToken(env, room, PATIENT, 'patient'),
      ]);
      const [doc2, pat2] = await Promise.all([
        openCall('doctor-2', doctorToken),
        openCall('patient-2', patientToken, { denyMedia: true }),
      ]);

      await byTestId(pat2, 'media-warning').waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await byTestId(pat2, 'media-warning').textContent(), /запрещён/);

      await byTestId(doc2, 'join').click();
      await byTestId(pat2, 'join').click();
      await Promise.all([waitState(doc2, 'connected'), waitState(pat2, 'connected')]);

      let last = null;
      await until(
        () => `the receive-only patient to decode the doctor's video (last: ${JSON.stringify(last)})`,
        async () => {
          const s = await received(pat2);
          last = s;
          return s.framesDecoded > 0 && s.videoWidth > 0;
        },
        45_000,
      );
      assert.ok(await byTestId(pat2, 'toggle-mic').isDisabled(), 'mic button enabled without a microphone');
      assert.equal(await pat2.evaluate(() => window.vizit.pc().getSenders().filter((s) => s.track).length), 0);
      await until('the doctor sees the receive-only patient', async () =>
        (await byTestId(doc2, 'remote-name').textContent()).includes(PATIENT),
      );

      await byTestId(pat2, 'hangup').click();
      await byTestId(doc2, 'hangup').click();
      await Promise.all([doc2.context().close(), pat2.context().close()]);
    }),
  );

  test(
    'the server counts the media it received',
    { timeout: TEST_TIMEOUT },
    withDiagnostics(async () => {
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      // Prometheus text format: `name{labels} value`; sum every series of the counter.
      // A sample line is `name{labels} value [timestamp]`.
      const values = text
        .split('\n')
        .map((line) => /^vizit_packets_in_total(?:\{[^}]*\})?\s+(\S+)/.exec(line))
        .filter((m) => m !== null)
        .map((m) => Number(m[1]));
      assert.ok(values.length > 0, `no vizit_packets_in_total in /metrics:\n${text.slice(0, 2000)}`);
      const total = values.reduce((a, b) => a + b, 0);
      assert.ok(total > 0, `vizit_packets_in_total is ${total}`);
    }),
  );
});
